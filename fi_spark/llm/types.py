"""Requests, results and the deterministic request id -- the plain data the LLM layer passes around.

A request id is the sha256 of the canonical JSON of everything that decides the answer: model,
messages or prompt, sampling params, response schema, and the stage. Two runs that would send the same
request get the same id, so the ledger can answer the second one without an HTTP call. The endpoint is
not part of it: any server that serves the model answers the same request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Machine-readable reasons a row can fail with. FINAL ones are kept in the ledger (sending the request
# again would fail the same way and cost the same); TRANSIENT ones are not, so a re-run sends them again.
FINAL_REASONS = (
    "schema_invalid",  # valid JSON, but not an instance of the response schema (after schema_retries)
    "not_json",  # content is not JSON although a schema was asked for (after schema_retries)
    "truncated_output",  # the model hit max_tokens before the JSON was complete
    "http_400",  # the server refused the request itself (bad params, prompt too long, ...)
    "http_4xx",  # any other non-retryable client error
    "bad_request",  # the request row itself is unusable (no messages/prompt, messages not JSON)
)
TRANSIENT_REASONS = (
    "retries_exhausted",  # 429 / 5xx / timeouts / dropped connections on every attempt
    "endpoints_unavailable",  # every endpoint's circuit breaker stayed open until the request deadline
    "budget_exhausted",  # the token budget ran out before this request was sent
    "bad_response",  # the HTTP body was not a usable completion on every attempt
    "no_result",  # no answer was recorded for the request (a lost task); never expected, sent again next run
)
ERROR_REASONS = FINAL_REASONS + TRANSIENT_REASONS

# Causes a single attempt is retried for (counted per request in `retry_causes`).
RETRY_CAUSES = (
    "http_429",
    "http_5xx",
    "timeout",
    "connect",  # connection refused / reset before a response
    "disconnect",  # the server closed the connection mid-response (truncated body)
    "bad_body",  # a 200 whose body is not a JSON completion
    "not_json",
    "schema_invalid",
)


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, unicode kept -- the byte string that ids hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_id(
    *,
    model: str,
    stage: str,
    params: dict[str, Any],
    messages: list[dict[str, Any]] | None = None,
    prompt: str | None = None,
    messages_json: str | None = None,
) -> str:
    """sha256 hex of (model, messages or prompt, sampling params incl. response schema, stage).

    `messages_json` is messages already encoded with `canonical_json` (what stages send): it is spliced into
    the payload as is, so it gives the same id as `messages=` without decoding and re-encoding it.
    """
    if sum(v is not None for v in (messages, prompt, messages_json)) != 1:
        raise ValueError("request_id: give exactly one of messages=, messages_json= or prompt=")
    if messages_json is not None:  # canonical_json sorts the keys: messages < model < params < stage
        rest = canonical_json({"model": model, "params": params, "stage": stage})
        payload = '{"messages":' + messages_json + "," + rest[1:]
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    body: dict[str, Any] = {"model": model, "stage": stage, "params": params}
    body["messages" if messages is not None else "prompt"] = messages if messages is not None else prompt
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Sampling:
    """The sampling settings of one stage's requests; all of them are part of the request id."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float = 0.0  # OpenAI-standard; small models loop without it (see conf/local.yaml)
    top_logprobs: int = 0  # alternatives per generated token to return (0 = none); the adapter names the fields
    # Score the request's own last message instead of writing one: vLLM continues the final (assistant) message
    # and returns the logprob of every prompt token (`prompt_logprobs`); the likelihood judge reads them.
    score_final_message: bool = False

    def as_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.frequency_penalty:  # only when set, so request ids of runs without it stay the same
            params["frequency_penalty"] = self.frequency_penalty
        if self.stop:
            params["stop"] = list(self.stop)
        return params


@dataclass(frozen=True)
class LLMRequest:
    """One request. `key` is the caller's row key; `id` the deterministic request id; `group` (optional,
    e.g. the document of instantiate's requests) asks for endpoint affinity: one group, one server, so a
    shared prompt prefix is served from that server's prefix cache. The group is not part of the id."""

    id: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    key: str | None = None
    group: str | None = None


@dataclass
class LLMResult:
    """What happened to one request. Exactly one of (content, error_reason) is set."""

    request_id: str
    content: str | None = None
    parsed: str | None = None  # canonical JSON of the schema-valid answer
    logprobs: str | None = None  # JSON [[token, {alternative: logprob}], ...] per generated token (when asked)
    error_reason: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0  # summed over the attempts the server answered
    cached_tokens: int = 0  # of those, prompt tokens served from the server's prefix cache
    completion_tokens: int = 0
    latency_ms: float | None = None  # the last attempt
    server_ms: float = 0.0  # server time: latency of the attempts answered with a completion (normally one)
    total_ms: float = 0.0  # all attempts and waits
    attempts: int = 0  # HTTP attempts actually sent
    retry_causes: list[str] = field(default_factory=list)
    endpoint: str | None = None
    key: str | None = None
    finished_at_ms: int = 0  # wall clock (epoch ms) when the result was final

    @property
    def ok(self) -> bool:
        return self.error_reason is None

    @property
    def final(self) -> bool:
        """True when the result belongs in the ledger: an answer, or an error that a re-send would repeat."""
        return self.error_reason is None or self.error_reason in FINAL_REASONS
