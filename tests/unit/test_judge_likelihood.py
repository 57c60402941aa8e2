"""The likelihood judge: request shape, answer-token logprobs from a prompt's tail, lift -> score (no Spark)."""

from __future__ import annotations

import json

import pytest

from fi_spark.config import load_prompt
from fi_spark.judge import rubric as gen
from fi_spark.judge.likelihood import answer_logprob, expected_lift_score, lift_verdict, scoring_messages
from fi_spark.llm.adapter import Adapter, BadContent
from fi_spark.llm.types import LLMRequest, Sampling
from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError

EDGES = [0.0, 0.1, 0.2, 0.4]


def _tail(*tokens: tuple[str, float]) -> str:
    return json.dumps([[t, lp] for t, lp in tokens])


def test_scoring_request_continues_the_answer_and_asks_for_prompt_logprobs() -> None:
    """The answer is the final assistant message; vLLM is asked to continue it and return every prompt logprob."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=1, score_final_message=True))
    msgs = scoring_messages("What is Paris?", "The capital of France.")
    body = json.loads(ad.body(LLMRequest(id="r", messages=msgs)))
    assert body["messages"][-1] == {"role": "assistant", "content": "The capital of France."}
    assert (body["prompt_logprobs"], body["continue_final_message"], body["add_generation_prompt"]) == (0, True, False)
    assert ad.id_params()["score_final_message"] is True
    assert "score_final_message" not in Adapter(model="m", sampling=Sampling(max_tokens=1)).id_params()


def test_adapter_reads_prompt_logprobs_and_refuses_a_server_without_them() -> None:
    """vLLM's prompt_logprobs (first entry null) become [[decoded, logprob], ...]; none at all is a reasoned error."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=1, score_final_message=True))
    rows = [None, {"9": {"logprob": -7.5, "rank": 133, "decoded_token": "user"}},
            {"4649": {"logprob": -0.25, "rank": 1, "decoded_token": " France"}}]  # fmt: skip
    body = {"choices": [{"message": {"content": "x"}, "finish_reason": "length"}], "prompt_logprobs": rows}
    done = ad.check_content(ad.parse(json.dumps(body).encode()))
    assert json.loads(done.logprobs or "") == [["user", -7.5], [" France", -0.25]]
    without = ad.parse(json.dumps({"choices": [{"message": {"content": "x"}}]}).encode())
    with pytest.raises(BadContent) as err:
        ad.check_content(without)
    assert err.value.reason == "no_prompt_logprobs"


def test_answer_tokens_are_the_tail_that_spells_the_answer() -> None:
    """Tokens are taken from the end until their text (spaces ignored) covers the answer; the rest is prompt."""
    tail = _tail(("assistant", -9.0), ("\n", -0.1), ("The", -1.0), (" cat", -2.0), (" sat", -3.0))
    assert answer_logprob(tail, "The cat sat") == (-2.0, 3)
    assert answer_logprob(tail, "sat") == (-3.0, 1)
    assert answer_logprob(_tail((" é", -1.0), ("t", -3.0)), "ét") == (-2.0, 2)  # Unicode counts by character
    assert answer_logprob(tail, "") is None and answer_logprob(None, "x") is None and answer_logprob("{", "x") is None
    assert answer_logprob(_tail(("cat", -1.0)), "a long answer") == (-1.0, 1)  # tail shorter than the answer


@pytest.mark.parametrize(
    ("cond", "free", "score", "expected"),
    [(-1.0, -1.5, 5, 5.0), (-1.0, -1.3, 4, 4.5), (-1.0, -1.15, 3, 3.5), (-1.0, -1.05, 2, 2.5), (-1.2, -1.0, 1, 1.0)],
)
def test_lift_maps_onto_the_scale_by_the_edges(cond: float, free: float, score: int, expected: float) -> None:
    """score = 1 + edges at or below the lift; the expected score interpolates between edges."""
    v = lift_verdict(_tail(("ok", cond)), _tail(("ok", free)), "ok", EDGES, (1, 5))
    assert (v.score, v.reason) == (score, None)
    assert v.expected_score == pytest.approx(expected)
    assert v.rationale is not None and v.rationale.startswith(f"lift {cond - free:+.3f}")


def test_missing_logprobs_is_an_unusable_verdict_not_a_crash() -> None:
    """A scoring answer without logprobs gives judge_unparseable naming which request lacked them."""
    v = lift_verdict(None, _tail(("ok", -1.0)), "ok", EDGES, (1, 5))
    assert (v.score, v.reason) == (None, "judge_unparseable") and "instruction" in (v.detail or "")
    assert expected_lift_score(9.0, EDGES, (1, 5)) == 5.0 and expected_lift_score(-9.0, EDGES, (1, 5)) == 1.0


def test_shipped_likelihood_prompt_is_valid_and_bad_ones_are_refused() -> None:
    """judge.v4 loads and checks; a likelihood prompt without a neutral request or with unordered edges fails."""
    spec = load_prompt("judge.v4")
    gen.check_prompt(spec)
    assert spec.judge_style == "likelihood" and spec.lift_edges == sorted(spec.lift_edges)
    for bad in ({"neutral": ""}, {"lift_edges": [0.2, 0.1]}, {"lift_edges": []}):
        with pytest.raises(ConfigError, match="likelihood"):
            gen.check_prompt(PromptSpec(**{**spec.model_dump(exclude={"path"}), **bad}))
