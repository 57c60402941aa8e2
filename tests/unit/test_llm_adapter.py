"""Request ids, request bodies, response parsing and schema checks (fi_spark.llm.types / adapter / schema_instance)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import BaseModel, Field

from fi_spark.llm.adapter import Adapter, BadBody, BadContent, Completion
from fi_spark.llm.schema_instance import minimal_instance
from fi_spark.llm.types import LLMRequest, Sampling, request_id

MSGS = [{"role": "user", "content": "What is the capital of France?"}]
SCHEMA = {
    "type": "object",
    "properties": {"template": {"type": "string", "pattern": "<fi>.+</fi>"}, "score": {"type": "integer"}},
    "required": ["template", "score"],
}


class Verdict(BaseModel):
    score: int = Field(ge=1, le=5)
    rationale: str = Field(min_length=3)
    labels: list[str] = Field(min_length=1)


def test_request_id_is_stable_and_order_independent() -> None:
    """The same request hashes the same whatever the dict key order."""
    a = request_id(model="m", stage="s", params={"temperature": 0, "max_tokens": 8}, messages=MSGS)
    b = request_id(model="m", stage="s", params={"max_tokens": 8, "temperature": 0}, messages=[dict(MSGS[0])])
    assert a == b and len(a) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"model": "m2"},
        {"stage": "judge"},
        {"params": {"temperature": 0.5, "max_tokens": 8}},
        {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
    ],
)
def test_request_id_changes_with_every_component(change: dict) -> None:
    """Model, stage, sampling params and messages each change the id."""
    base = {"model": "m", "stage": "s", "params": {"temperature": 0, "max_tokens": 8}, "messages": MSGS}
    assert request_id(**base) != request_id(**{**base, **change})


def test_request_id_prompt_and_messages_differ_and_need_one() -> None:
    """A prompt and messages with the same text are different requests; exactly one is required."""
    assert request_id(model="m", stage="s", params={}, prompt="x") != request_id(
        model="m", stage="s", params={}, messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(ValueError):
        request_id(model="m", stage="s", params={})


def test_chat_body_asks_for_json_schema() -> None:
    """Chat requests carry OpenAI's response_format json_schema and the sampling params."""
    ad = Adapter(model="m", sampling=Sampling(max_tokens=32, seed=3), response_schema=SCHEMA, schema_name="tpl")
    body = json.loads(ad.body(LLMRequest(id="x", messages=MSGS)))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "tpl", "schema": SCHEMA, "strict": True},
    }
    assert (body["model"], body["max_tokens"], body["seed"], body["messages"]) == ("m", 32, 3, MSGS)
    assert "structured_outputs" not in body
    assert ad.path == "/chat/completions"


def test_a_root_union_schema_is_sent_non_strict() -> None:
    """OpenAI's strict structured output refuses a root anyOf (instantiate's decline union): it goes strict=false,
    still as the schema; an object schema stays strict."""
    union = {"anyOf": [SCHEMA, {"type": "object", "properties": {"compatible": {"const": False}}}]}
    ad = Adapter(model="m", sampling=Sampling(8), flavor="openai", response_schema=union, schema_name="u")
    body = json.loads(ad.body(LLMRequest(id="x", messages=MSGS)))
    assert body["response_format"]["json_schema"] == {"name": "u", "schema": union, "strict": False}


def test_completions_body_uses_vllm_field_only_for_vllm() -> None:
    """vLLM's structured_outputs is sent only to the vllm flavor; plain OpenAI servers get no such field."""
    req = LLMRequest(id="x", prompt="Q: 2+2?\nA:")
    vllm = json.loads(Adapter(model="m", sampling=Sampling(8), api="completions", response_schema=SCHEMA).body(req))
    plain = json.loads(
        Adapter(model="m", sampling=Sampling(8), api="completions", flavor="openai", response_schema=SCHEMA).body(req)
    )
    assert vllm["structured_outputs"] == {"json": SCHEMA} and vllm["prompt"] == req.prompt
    assert "structured_outputs" not in plain and "response_format" not in plain and "guided_json" not in vllm


def test_pydantic_model_is_sent_as_its_json_schema() -> None:
    """A pydantic class as response_schema becomes its model_json_schema() and is part of the id params."""
    ad = Adapter(model="m", sampling=Sampling(8), response_schema=Verdict)
    assert ad.schema == Verdict.model_json_schema()
    assert ad.id_params()["response_schema"] == Verdict.model_json_schema()


def test_bad_schema_and_bad_arguments_fail_at_construction() -> None:
    """An invalid JSON schema or an unknown api/flavor is reported before any request is sent."""
    with pytest.raises(jsonschema.SchemaError):
        Adapter(model="m", sampling=Sampling(8), response_schema={"type": "objekt"})
    with pytest.raises(ValueError, match="api must be"):
        Adapter(model="m", sampling=Sampling(8), api="embeddings")
    with pytest.raises(TypeError, match="pydantic model class"):
        Adapter(model="m", sampling=Sampling(8), response_schema=42)


def _chat_body(content: str, finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "choices": [{"message": {"content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7},
        }
    ).encode()


def test_parse_reads_content_and_usage() -> None:
    """A chat completion gives content, finish reason and token counts."""
    c = Adapter(model="m", sampling=Sampling(8)).parse(_chat_body("hi"))
    assert (c.content, c.finish_reason, c.prompt_tokens, c.completion_tokens) == ("hi", "stop", 5, 7)
    assert c.cached_tokens == 0  # not reported: zero


@pytest.mark.parametrize(
    ("details", "cached"),
    [({"cached_tokens": 3}, 3), ({"cached_tokens": None}, 0), (None, 0), ({"cached_tokens": "x"}, 0), ([], 0)],
)
def test_parse_reads_cached_prompt_tokens(details: object, cached: int) -> None:
    """usage.prompt_tokens_details.cached_tokens (vLLM's prefix-cache hits) is read; junk or absence gives 0."""
    body = json.loads(_chat_body("hi"))
    body["usage"]["prompt_tokens_details"] = details
    assert Adapter(model="m", sampling=Sampling(8)).parse(json.dumps(body).encode()).cached_tokens == cached


@pytest.mark.parametrize(
    "body", [b"<html>502</html>", b'{"choices": []}', b'{"error": "x"}', b'{"choices": [{"message": {}}]}']
)
def test_parse_rejects_non_completions(body: bytes) -> None:
    """Non-JSON bodies and JSON without a completion are BadBody (transport-level, retried)."""
    with pytest.raises(BadBody):
        Adapter(model="m", sampling=Sampling(8)).parse(body)


@pytest.mark.parametrize(
    ("content", "finish", "reason"),
    [
        ('{"template": "no slot here", "score": 1}', "stop", "schema_invalid"),
        ('{"template": "<fi>x</fi>"}', "stop", "schema_invalid"),
        ("Sure! Here is", "stop", "not_json"),
        ('{"template": "<fi>x</f', "length", "truncated_output"),
    ],
)
def test_check_content_reasons(content: str, finish: str, reason: str) -> None:
    """Each way content can miss the schema gets its own machine-readable reason."""
    ad = Adapter(model="m", sampling=Sampling(8), response_schema=SCHEMA)
    with pytest.raises(BadContent) as info:
        ad.check_content(Completion(content, finish, 1, 1))
    assert info.value.reason == reason


def test_check_content_sets_canonical_parsed() -> None:
    """A valid answer is re-serialized canonically (sorted keys, compact)."""
    ad = Adapter(model="m", sampling=Sampling(8), response_schema=SCHEMA)
    c = ad.check_content(Completion('{ "score": 2, "template": "What is <fi>city</fi>?" }', "stop", 1, 1))
    assert c.parsed == '{"score":2,"template":"What is <fi>city</fi>?"}'


@pytest.mark.parametrize("schema", [SCHEMA, Verdict.model_json_schema(), {"type": "array", "minItems": 2}])
def test_minimal_instance_is_valid(schema: dict) -> None:
    """The test server's structured answers validate against the schema they were asked for."""
    jsonschema.validate(minimal_instance(schema, seed_text="abc"), schema)
