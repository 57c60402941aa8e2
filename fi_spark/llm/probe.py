"""Is a configured LLM endpoint there at all? One GET `<endpoint>/models` per endpoint, before any Spark work.

Why: a stage against a server that refuses connections used to start the engine, build every request, spend
the client's retries and circuit-breaker waits on each of them, and end green with every row rejected as
`llm_endpoints_unavailable`. The probe turns that into one line in seconds, naming the endpoint and what to
check. It also names the model when `llm.model` is empty (the first model the server lists), so a run against a
vLLM server needs no model setting; when the server answers but lists none, the fix is to set `llm.model`
(when it does not answer, the fix is the endpoint, not the model: the message says which).

Only configured endpoints are probed: with `llm.endpoints` empty the local vLLM server is started and
supervised by fi_spark.llm.local_server, which has its own health checks. No pyspark here (the CLI imports it).
"""

from __future__ import annotations

import logging
import os

import httpx

from fi_spark.config.llm import LLMConfig
from fi_spark.errors import LLMFailureError
from fi_spark.redact import redact_url
from fi_spark.section import ConfigError

log = logging.getLogger("fi_spark")

CHECK = "check that the server is running and reachable from the driver and the workers, or fix llm.endpoints"


def _headers(cfg: LLMConfig) -> dict[str, str]:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _why(exc: httpx.HTTPError) -> str:
    """A short cause: `connection refused`, `timed out after 10 s`, the HTTP status ..."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        return "connection refused" if "refused" in text else f"cannot connect ({str(exc)[:120] or type(exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def list_models(url: str, cfg: LLMConfig, timeout_s: float | None = None) -> list[str] | None:
    """The model ids `url`/models lists; None when it answered with something that is not a model list
    (some OpenAI-compatible servers have no /models). Raises httpx.HTTPError when it did not answer, and
    LLMFailureError when it refused the api key."""
    timeout = timeout_s or cfg.connect_timeout_s
    response = httpx.get(url.rstrip("/") + "/models", headers=_headers(cfg), timeout=timeout)
    if response.status_code in (401, 403):
        raise LLMFailureError(
            f"llm.endpoints: {redact_url(url)} refused the api key (HTTP {response.status_code} on GET /models); "
            f"check llm.api_key_env (the NAME of the variable holding the key: {cfg.api_key_env or 'not set'})"
        )
    if response.status_code != 200:
        return None
    try:
        return [str(m["id"]) for m in response.json()["data"] if m.get("id")]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def served_model(url: str, cfg: LLMConfig, timeout_s: float | None = None) -> str:
    """The first model `url` serves, for an empty `llm.model`; one-line errors for a dead or silent server."""
    try:
        models = list_models(url, cfg, timeout_s)
    except httpx.HTTPError as exc:
        why = _why(exc)
        raise LLMFailureError(f"llm.endpoints: {redact_url(url)} did not answer GET /models ({why}); {CHECK}") from exc
    if not models:
        raise ConfigError(
            f"llm.model is empty and {redact_url(url)}/models lists no model: set llm.model to the name the server "
            "serves (--set llm.model=NAME)"
        )
    return models[0]


def probe_endpoints(cfg: LLMConfig, timeout_s: float | None = None) -> None:
    """Check that a configured endpoint answers, and that a model is set or can be found.

    Raises LLMFailureError (one line, naming each endpoint and its failure) when none answers; an endpoint that
    fails while another answers is logged as a warning (the client's circuit breaker routes around it).
    """
    if not cfg.endpoints:
        return
    dead: list[str] = []
    models: list[str] | None = None
    answered = False
    for url in cfg.endpoints:
        try:
            found = list_models(url, cfg, timeout_s)
        except httpx.HTTPError as exc:
            dead.append(f"{redact_url(url)}: {_why(exc)}")
            continue
        answered = True
        models = models or found
    if not answered:
        raise LLMFailureError(
            f"llm.endpoints: no endpoint answered GET /models ({'; '.join(dead)}); {CHECK}; nothing was sent"
        )
    for line in dead:
        log.warning("llm endpoint %s (the others answer; requests go there)", line)
    if cfg.model:
        if models is not None and cfg.model not in models:
            log.warning("llm.model %r is not among the models the endpoint lists (%s)", cfg.model, ", ".join(models))
        return
    if not models:
        raise ConfigError(
            f"llm.model is empty and {redact_url(cfg.endpoints[0])}/models lists no model: set llm.model to the name "
            "the server serves (--set llm.model=NAME)"
        )
    log.info("llm.model is empty: the stages use %s, the first model the endpoint lists", models[0])
