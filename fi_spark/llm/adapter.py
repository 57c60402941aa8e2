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
- a *choice* schema (a root `enum` of scalars, e.g. the judge's one-token score) goes to vLLM as
  `structured_outputs = {"choice": [...]}` on either API, so the answer is exactly one of the values
  (a bare JSON scalar such as `4`, which the schema then validates); other servers get it as a JSON schema.

Logprobs (`Sampling.top_logprobs` > 0): chat asks `logprobs: true, top_logprobs: n`, completions asks
`logprobs: n`. Both answers are read into one shape, `Completion.logprobs`: the JSON string
`[[token, {alternative: logprob, ...}], ...]`, one entry per generated token, in order. Consumers that
need one position (the judge's score digit) find it by the tokens' text; see fi_spark.judge.rubric.

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
    logprobs: str | None = None  # JSON [[token, {alternative: logprob}], ...] when logprobs were asked for


def choice_values(schema: dict[str, Any] | None) -> list[Any] | None:
    """The allowed values when `schema` is a root enum of strings/numbers (a choice), else None."""
    values = (schema or {}).get("enum")
    if not isinstance(values, list) or not values or (schema or {}).get("type") not in (None, "integer", "string"):
        return None
    ok = all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
    return values if ok else None


def read_logprobs(choice: dict[str, Any], api: str) -> str | None:
    """The choice's logprobs as `[[token, {alternative: logprob}], ...]` JSON, or None when absent."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    entries: list[list[Any]] = []
    if api == "chat":
        for item in lp.get("content") or []:
            top = {str(t["token"]): float(t["logprob"]) for t in item.get("top_logprobs") or []}
            top.setdefault(str(item["token"]), float(item["logprob"]))
            entries.append([str(item["token"]), top])
    else:
        tokens, tops = lp.get("tokens") or [], lp.get("top_logprobs") or []
        chosen = lp.get("token_logprobs") or [None] * len(tokens)
        for i, token in enumerate(tokens):
            top = {str(k): float(v) for k, v in (tops[i] if i < len(tops) and tops[i] else {}).items()}
            if chosen[i] is not None:
                top.setdefault(str(token), float(chosen[i]))
            entries.append([str(token), top])
    return json.dumps(entries, ensure_ascii=False) if entries else None


PROMPT_TAIL_TOKENS = 512  # prompt logprobs kept per answer: the scored message's tokens, not the whole prompt


def read_prompt_logprobs(data: dict[str, Any]) -> str | None:
    """vLLM's `prompt_logprobs` (one `{token_id: {logprob, decoded_token}}` per prompt token, the first null)
    as `[[decoded_token, logprob], ...]` JSON for the last PROMPT_TAIL_TOKENS tokens, or None when absent."""
    rows = data.get("prompt_logprobs")
    if not isinstance(rows, list) or not rows:
        return None
    entries: list[list[Any]] = []
    for row in rows[-PROMPT_TAIL_TOKENS:]:
        if not isinstance(row, dict) or not row:
            continue
        own = next(iter(row.values()))  # asked with prompt_logprobs=0: the prompt's own token only
        entries.append([str(own.get("decoded_token") or ""), float(own["logprob"])])
    return json.dumps(entries, ensure_ascii=False) if entries else None


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
        if self.sampling.top_logprobs:  # only when asked, so ids of requests without logprobs stay the same
            params["top_logprobs"] = self.sampling.top_logprobs
        if self.schema is not None:
            params["response_schema"] = self.schema
        if self.sampling.score_final_message:
            params["score_final_message"] = True
        return params

    def body(self, request: LLMRequest) -> bytes:
        payload: dict[str, Any] = {"model": self.model, **self.sampling.as_params()}
        n_top = self.sampling.top_logprobs
        choices = choice_values(self.schema) if self.flavor == "vllm" else None
        if choices is not None:
            payload["structured_outputs"] = {"choice": [str(v) for v in choices]}
        if self.api == "chat":
            if request.messages is None:
                raise ValueError("the chat API needs messages")
            payload["messages"] = request.messages
            if self.schema is not None and choices is None:
                # OpenAI's strict mode refuses a root `anyOf` (instantiate's accept-or-decline union): such a
                # schema goes non-strict, as guidance; vLLM enforces either way and every answer is validated here
                strict = "anyOf" not in self.schema
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": self.schema_name, "schema": self.schema, "strict": strict},
                }
            if n_top:
                payload.update(logprobs=True, top_logprobs=n_top)
            if self.sampling.score_final_message:  # vLLM's extra chat parameters
                payload.update(prompt_logprobs=0, continue_final_message=True, add_generation_prompt=False)
        else:
            if request.prompt is None:
                raise ValueError("the completions API needs a prompt")
            payload["prompt"] = request.prompt
            if self.schema is not None and self.flavor == "vllm" and choices is None:
                payload["structured_outputs"] = {"json": self.schema}
            if n_top:
                payload["logprobs"] = n_top
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
                logprobs=read_prompt_logprobs(data)
                if self.sampling.score_final_message
                else read_logprobs(choice, self.api),
                cached_tokens=_cached_tokens(usage),
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise BadBody(f"body is JSON but not a completion: {exc}") from exc

    def check_content(self, completion: Completion) -> Completion:
        """Validate the content against the schema; set `parsed`; raise BadContent with a reason."""
        if self.sampling.score_final_message and completion.logprobs is None:
            raise BadContent("no_prompt_logprobs", "the server sent no prompt_logprobs (scoring needs a vLLM server)")
        if self._validator is None:
            return completion
        choices = choice_values(self.schema)
        try:
            value = json.loads(completion.content)
        except ValueError as exc:
            if choices is not None and completion.content.strip() in choices:  # vLLM sends a string choice bare
                completion.parsed = canonical_json(completion.content.strip())
                return completion
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
