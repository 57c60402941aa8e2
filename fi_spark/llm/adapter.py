"""The one module that knows OpenAI-compatible request and response shapes, and vLLM's extra fields.

Consumes an `LLMRequest` and the stage's sampling settings, produces the HTTP path and JSON body;
consumes an HTTP body, produces the content and token counts, and checks the content against the
response schema.

Structured output:
- chat API (any server): `response_format = {"type": "json_schema", "json_schema": {...}}` -- the OpenAI
  field, which vLLM 0.32 also honours (checked on the CPU build: schema-valid JSON, `pattern` honoured).
- completions API on vLLM: `structured_outputs = {"json": schema}`. The older `guided_json` field is
  silently ignored by vLLM 0.32, which is why server-specific names live here and nowhere else.
- completions API on a plain OpenAI server: no structured-output field exists; answers are validated only.

Validation uses `jsonschema` (Draft 2020-12, what pydantic emits), compiled once per adapter: a
well-kept validator that checks exactly the schema the server was given, pydantic models included
(their `model_json_schema()` is what is sent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from fi_spark.llm.types import LLMRequest, Sampling, canonical_json


class BadBody(Exception):
    """The HTTP body is not a usable completion (not JSON, no choices): a transport-level failure."""


class BadContent(Exception):
    """The completion arrived but its content does not satisfy the response schema."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # not_json | schema_invalid | truncated_output
        self.detail = detail


@dataclass
class Completion:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    parsed: str | None = None  # canonical JSON, set by `check_content` when a schema is in use
    cached_tokens: int = 0  # usage.prompt_tokens_details.cached_tokens (vLLM: --enable-prompt-tokens-details)


def schema_dict(response_schema: Any) -> dict[str, Any] | None:
    """A JSON schema from a dict or a pydantic model class (its `model_json_schema()`)."""
    if response_schema is None:
        return None
    if isinstance(response_schema, dict):
        return response_schema
    to_schema = getattr(response_schema, "model_json_schema", None)
    if callable(to_schema):
        return dict(to_schema())
    raise TypeError(
        f"response_schema must be a JSON-schema dict or a pydantic model class, got {type(response_schema).__name__}"
    )


class Adapter:
    """Builds bodies and reads answers for one stage: model, API, dialect, sampling and schema are fixed."""

    def __init__(
        self,
        *,
        model: str,
        sampling: Sampling,
        api: str = "chat",
        flavor: str = "vllm",
        response_schema: Any = None,
        schema_name: str = "answer",
    ) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
        if flavor not in ("vllm", "openai"):
            raise ValueError(f"flavor must be 'vllm' or 'openai', got {flavor!r}")
        self.model = model
        self.sampling = sampling
        self.api = api
        self.flavor = flavor
        self.schema = schema_dict(response_schema)
        self.schema_name = schema_name
        self._validator = None
        if self.schema is not None:
            jsonschema.Draft202012Validator.check_schema(self.schema)
            self._validator = jsonschema.Draft202012Validator(self.schema)

    @property
    def path(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"

    def id_params(self) -> dict[str, Any]:
        """Everything besides model, input and stage that decides the answer (hashed into the request id)."""
        params = {"api": self.api, **self.sampling.as_params()}
        if self.schema is not None:
            params["response_schema"] = self.schema
        return params

    def body(self, request: LLMRequest) -> bytes:
        payload: dict[str, Any] = {"model": self.model, **self.sampling.as_params()}
        if self.api == "chat":
            if request.messages is None:
                raise ValueError("the chat API needs messages")
            payload["messages"] = request.messages
            if self.schema is not None:
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": self.schema_name, "schema": self.schema, "strict": True},
                }
        else:
            if request.prompt is None:
                raise ValueError("the completions API needs a prompt")
            payload["prompt"] = request.prompt
            if self.schema is not None and self.flavor == "vllm":
                payload["structured_outputs"] = {"json": self.schema}
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def parse(self, body: bytes) -> Completion:
        """Read a 200 body; raise BadBody when it is not a completion."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadBody(f"body is not JSON ({len(body)} bytes): {body[:80]!r}") from exc
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"] if self.api == "chat" else choice["text"]
            usage = data.get("usage") or {}
            if not isinstance(content, str):
                raise TypeError("content is not a string")
            return Completion(
                content=content,
                finish_reason=choice.get("finish_reason"),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=_cached_tokens(usage),
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise BadBody(f"body is JSON but not a completion: {exc}") from exc

    def check_content(self, completion: Completion) -> Completion:
        """Validate the content against the schema; set `parsed`; raise BadContent with a reason."""
        if self._validator is None:
            return completion
        try:
            value = json.loads(completion.content)
        except ValueError as exc:
            if completion.finish_reason == "length":
                raise BadContent(
                    "truncated_output", f"max_tokens={self.sampling.max_tokens} reached before the JSON ended"
                ) from exc
            raise BadContent("not_json", f"content is not JSON: {completion.content[:80]!r}") from exc
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise BadContent("schema_invalid", f"{where}: {error.message[:200]}")
        completion.parsed = canonical_json(value)
        return completion


def _cached_tokens(usage: dict[str, Any]) -> int:
    """Prompt tokens served from the prefix cache; 0 where the server does not report them (or reports junk)."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return 0
    try:
        return max(0, int(details.get("cached_tokens") or 0))
    except (TypeError, ValueError):
        return 0
