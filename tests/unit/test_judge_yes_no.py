"""The yes/no judge (judge_style: yes_no, judge.v3): P(yes) from logprobs onto the 1-5 scale, and its request."""

from __future__ import annotations

import json
import math

import pytest

from fi_spark.config import load_prompt
from fi_spark.judge.rubric import (
    JudgeVerdict,
    check_prompt,
    judge_messages,
    judge_verdict,
    parse_yes_no,
    request_shape,
    yes_probability,
)
from fi_spark.llm.adapter import Adapter, Completion
from fi_spark.llm.types import Sampling

LN = math.log
# the shape fi_spark.llm.adapter stores: [[token, {alternative: logprob}], ...]; vLLM gives -9999 to masked tokens
VLLM = json.dumps(
    [["no", {"no": LN(0.6), "yes": LN(0.2), "n": LN(0.1), "#": -9999.0}], ["<|im_end|>", {"<|im_end|>": 0.0}]]
)


@pytest.mark.parametrize(
    ("logprobs", "expected"),
    [
        (VLLM, 0.25),  # 0.2 / (0.2 + 0.6): renormalized over yes and no, "n" and masked tokens ignored
        (json.dumps({"Yes": LN(0.3), " yes": LN(0.3), "No": LN(0.2)}), 0.75),  # case and spaces fold together
        (json.dumps([["yes", {"yes": 0.0}]]), 1.0),
        (json.dumps({"maybe": -0.1}), None),  # neither word among the alternatives
        ("not json", None),
        (None, None),
        (json.dumps([]), None),
    ],
)
def test_yes_probability(logprobs, expected):
    """P(yes) is read from the first token's alternatives only, renormalized over yes/no; junk gives None."""
    got = yes_probability(logprobs)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    ("answer", "logprobs", "expected"),
    [
        ("no", VLLM, JudgeVerdict(2, None, expected_score=2.0)),  # 1 + 4 * 0.25
        ('"yes"', json.dumps({"yes": LN(0.7), "no": LN(0.3)}), JudgeVerdict(4, None, expected_score=3.8)),
        ("yes", json.dumps({"yes": LN(0.6), "no": LN(0.4)}), JudgeVerdict(3, None, expected_score=3.4)),
        ("yes", json.dumps({"yes": LN(0.625), "no": LN(0.375)}), JudgeVerdict(4, None, expected_score=3.5)),
        ("yes", None, JudgeVerdict(5, None)),  # no logprobs: the word alone, top or bottom of the scale
        ("no", None, JudgeVerdict(1, None)),
    ],
)
def test_parse_yes_no_maps_p_yes_onto_the_scale(answer, logprobs, expected):
    """expected_score = 1 + 4 * P(yes); the score is it rounded half up, so score >= 4 needs P(yes) >= 0.625."""
    got = parse_yes_no(answer, logprobs, (1, 5))
    assert got.score == expected.score and got.rationale is None and got.reason is None
    assert got.expected_score == pytest.approx(expected.expected_score) if expected.expected_score else True
    assert (got.expected_score is None) == (expected.expected_score is None)


@pytest.mark.parametrize("answer", ["maybe", "4", "", None, '{"verdict": "yes"}'])
def test_parse_yes_no_rejects_other_answers(answer):
    """Anything but yes/no is judge_unparseable, whatever the logprobs say."""
    got = parse_yes_no(answer, VLLM, (1, 5))
    assert (got.score, got.reason) == (None, "judge_unparseable")


def test_v3_prompt_is_a_few_shot_yes_no_question_without_the_document():
    """judge.v3 renders system, a yes and a no example, then the pair; the document is not sent."""
    spec = load_prompt("judge.v3")
    check_prompt(spec)
    assert spec.judge_style == "yes_no"
    msgs = judge_messages(spec, "What is an aardvark?", "A mammal.", "SECRET SOURCE TEXT", (1, 5), 3000, False)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [msgs[2]["content"], msgs[4]["content"]] == ["yes", "no"]
    assert msgs[-1]["content"] == (
        "INSTRUCTION: What is an aardvark?\nANSWER: A mammal.\n"
        "Does the ANSWER respond to the INSTRUCTION? Reply yes or no."
    )
    assert all("SECRET" not in m["content"] for m in msgs)
    assert request_shape(spec, (1, 5), False, 600, None) == ({"type": "string", "enum": ["yes", "no"]}, 2)
    assert judge_verdict(spec, "no", VLLM, (1, 5), 600).expected_score == pytest.approx(2.0)


def test_rubric_prompts_keep_their_request_shape():
    """judge.v2 still asks for the one score token (4 max tokens) and parses digits."""
    spec = load_prompt("judge.v2")
    assert request_shape(spec, (1, 5), False, 600, 160) == ({"type": "integer", "enum": [1, 2, 3, 4, 5]}, 4)
    assert request_shape(spec, (1, 5), True, 600, 160)[1] == 160
    assert judge_verdict(spec, "4", None, (1, 5), 600) == JudgeVerdict(4, None)


def test_adapter_accepts_a_bare_string_choice():
    """vLLM answers a string choice without JSON quotes (`yes`); it is valid, parsed as the JSON string."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=2), response_schema={"type": "string", "enum": ["yes", "no"]})
    assert ad.check_content(Completion("yes", "stop", 10, 1)).parsed == '"yes"'
    with pytest.raises(Exception, match="not JSON"):
        ad.check_content(Completion("perhaps", "stop", 10, 1))


def test_stage_checker_reads_a_yes_no_answer_with_the_v3_prompt():
    """The judge stage's per-row checker turns a stored yes/no answer and its logprobs into the verdict columns."""
    from fi_spark.judge.styles import verdict

    row = {"llm_reason": None, "error": None, "parsed": '"no"', "content": "no", "logprobs": VLLM}
    assert verdict(load_prompt("judge.v3"), (1, 5), 600, row) == {
        "score": 2, "rationale": None, "error_reason": None, "detail": None, "expected_score": 2.0,
    }  # fmt: skip
    failed = {**row, "llm_reason": "timeout", "error": "read timeout"}
    assert verdict(load_prompt("judge.v3"), (1, 5), 600, failed) == {
        "error_reason": "llm_timeout",
        "detail": "read timeout",
    }
