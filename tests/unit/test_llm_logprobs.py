"""Logprobs and choice constraints in the LLM adapter: request fields, literal response payloads, request ids."""

from __future__ import annotations

import json

import pytest

from fi_spark.llm.adapter import Adapter, BadContent, Completion, choice_values
from fi_spark.llm.types import LLMRequest, Sampling

MSGS = [{"role": "user", "content": "Score it."}]
SCORE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}

# What vLLM's chat endpoint returns for a one-token answer with logprobs=true, top_logprobs=3 (trimmed).
CHAT_BODY = {
    "choices": [
        {
            "message": {"role": "assistant", "content": "4"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {
                        "token": "4",
                        "logprob": -0.4,
                        "bytes": [52],
                        "top_logprobs": [
                            {"token": "4", "logprob": -0.4, "bytes": [52]},
                            {"token": "5", "logprob": -1.2, "bytes": [53]},
                            {"token": "The", "logprob": -3.0, "bytes": [84, 104, 101]},
                        ],
                    }
                ]
            },
        }
    ],
    "usage": {"prompt_tokens": 90, "completion_tokens": 1},
}
# The completions endpoint's older shape (logprobs=2).
COMPLETIONS_BODY = {
    "choices": [
        {
            "text": ' {"score": 3}',
            "finish_reason": "stop",
            "logprobs": {
                "tokens": [' {"', "score", '":', " 3", "}"],
                "token_logprobs": [0.0, 0.0, 0.0, -0.7, 0.0],
                "top_logprobs": [{' {"': 0.0}, {"score": 0.0}, {'":': 0.0}, {" 3": -0.7, " 2": -0.9}, {"}": 0.0}],
            },
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 5},
}


def test_chat_body_asks_for_logprobs_and_a_vllm_choice() -> None:
    """A root integer enum goes to vLLM as a choice (no response_format); logprobs as logprobs + top_logprobs."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=4, top_logprobs=5), response_schema=SCORE)
    body = json.loads(ad.body(LLMRequest(id="x", messages=MSGS)))
    assert body["structured_outputs"] == {"choice": ["1", "2", "3", "4", "5"]}
    assert "response_format" not in body
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 5, 4)


def test_openai_flavor_gets_the_choice_as_a_json_schema() -> None:
    """Servers other than vLLM get the integer enum as an ordinary json_schema response_format."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=4), flavor="openai", response_schema=SCORE)
    body = json.loads(ad.body(LLMRequest(id="x", messages=MSGS)))
    assert body["response_format"]["json_schema"]["schema"] == SCORE
    assert "structured_outputs" not in body and "logprobs" not in body and "top_logprobs" not in body


def test_completions_body_asks_logprobs_as_a_count() -> None:
    """The completions API names logprobs as an integer count and has no top_logprobs field."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=4, top_logprobs=3), api="completions")
    body = json.loads(ad.body(LLMRequest(id="x", prompt="p")))
    assert body["logprobs"] == 3 and "top_logprobs" not in body


def test_logprobs_enter_the_request_id_only_when_asked() -> None:
    """Asking for logprobs changes the request id params; not asking leaves them as before."""
    plain = Adapter(model="m", sampling=Sampling(max_tokens=4)).id_params()
    asked = Adapter(model="m", sampling=Sampling(max_tokens=4, top_logprobs=5)).id_params()
    assert "top_logprobs" not in plain and asked == {**plain, "top_logprobs": 5}


def test_choice_values_only_for_root_scalar_enums() -> None:
    """Only a root enum of strings or integers is a choice; objects and booleans are not."""
    assert choice_values(SCORE) == [1, 2, 3, 4, 5]
    assert choice_values({"enum": ["a", "b"]}) == ["a", "b"]
    assert choice_values({"type": "object", "enum": [{"a": 1}]}) is None
    assert choice_values({"enum": [True, False]}) is None and choice_values(None) is None


def test_chat_logprobs_are_read_per_token() -> None:
    """The chat payload becomes [[token, {alternative: logprob}]] with the chosen token included."""
    c = Adapter(model="m", sampling=Sampling(max_tokens=4, top_logprobs=3), response_schema=SCORE).parse(
        json.dumps(CHAT_BODY).encode()
    )
    assert json.loads(c.logprobs or "") == [["4", {"4": -0.4, "5": -1.2, "The": -3.0}]]
    assert (c.content, c.completion_tokens) == ("4", 1)


def test_completions_logprobs_are_read_per_token() -> None:
    """The completions payload (tokens + top_logprobs maps) becomes the same per-token list."""
    c = Adapter(model="m", sampling=Sampling(max_tokens=8, top_logprobs=2), api="completions").parse(
        json.dumps(COMPLETIONS_BODY).encode()
    )
    entries = json.loads(c.logprobs or "")
    assert [t for t, _ in entries] == [' {"', "score", '":', " 3", "}"]
    assert entries[3] == [" 3", {" 3": -0.7, " 2": -0.9}]


def test_no_logprobs_in_the_answer_gives_none() -> None:
    """A server that ignores the request (no logprobs key, or null) gives logprobs None, not an error."""
    body = {"choices": [{"message": {"content": "4"}, "finish_reason": "stop", "logprobs": None}], "usage": {}}
    assert Adapter(model="m", sampling=Sampling(4)).parse(json.dumps(body).encode()).logprobs is None


def test_bare_integer_answer_validates_against_the_choice_schema() -> None:
    """The one-token answer `4` is valid JSON for the integer enum, and `6` is not."""
    ad = Adapter(model="m", sampling=Sampling(4), response_schema=SCORE)
    assert ad.check_content(Completion("4", "stop", 1, 1)).parsed == "4"
    with pytest.raises(BadContent) as info:
        ad.check_content(Completion("6", "stop", 1, 1))
    assert info.value.reason == "schema_invalid"
