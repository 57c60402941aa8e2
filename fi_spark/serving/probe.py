"""Every health and model probe of fi-spark's inference servers: the only place that calls `/models` and `/health`.

- `probe_endpoints(cfg)` (the CLI, before a stage sends anything): does a configured endpoint answer, and is a
  model set or can one be found? One line naming each endpoint and its failure when none answers, e.g.
  `llm.endpoints: no endpoint answered GET /models (http://gpu:8000/v1: connection refused); check ...`;
- `served_model(url, cfg)`: the first model an endpoint lists, for an empty `llm.model` (when it does not
  answer, the fix is the endpoint, not the model: the message says which);
- `is_serving(url, model)`, `health_ok(root)`, `health_problem(root, url, model, ...)`: the local server's supervision
  (fi_spark.serving.lease, .supervise): does it list the model, does `/health` answer, does a one-token
  completion succeed.

HTTP goes through aiohttp, the library the client uses (fi_spark.llm.client says why not httpx), called
synchronously here: these are a handful of requests at start-up and after failures, never the hot path. No
pyspark here (the CLI imports it).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from fi_spark.config.llm import LLMConfig
from fi_spark.errors import LLMFailureError
from fi_spark.redact import redact_url
from fi_spark.section import ConfigError

log = logging.getLogger("fi_spark")

CHECK = "check that the server is running and reachable from the driver and the workers, or fix llm.endpoints"


class Unanswered(Exception):
    """The server did not answer (refused, timed out, closed the connection); the message is the short cause."""


def request(
    method: str, url: str, timeout_s: float, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, bytes]:
    """One HTTP request, synchronously: (status, body). Raises Unanswered with a short cause when no answer came.

    Runs its own event loop (in a helper thread when the caller already runs one, e.g. a notebook kernel)."""

    async def send() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.request(method, url, headers=headers, json=body) as response,
        ):
            return response.status, await response.read()

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(send())
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, send()).result()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unanswered(_why(exc)) from exc


def _why(exc: BaseException) -> str:
    """A short cause: `connection refused`, `no answer in time`, ..."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = exc.os_error.errno == errno.ECONNREFUSED or "refused" in str(exc).lower()
        return "connection refused" if refused else f"cannot connect ({str(exc)[:120] or type(exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:120]}" if str(exc) else type(exc).__name__


def _headers(cfg: LLMConfig) -> dict[str, str]:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _model_ids(body: bytes) -> list[str] | None:
    """The ids of an OpenAI `/models` answer; None when it is not a model list."""
    try:
        return [str(m["id"]) for m in json.loads(body)["data"] if m.get("id")]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def list_models(url: str, cfg: LLMConfig, timeout_s: float | None = None) -> list[str] | None:
    """The model ids `url`/models lists; None when it answered with something that is not a model list
    (some OpenAI-compatible servers have no /models). Raises Unanswered when it did not answer, and
    LLMFailureError when it refused the api key."""
    status, body = request("GET", url.rstrip("/") + "/models", timeout_s or cfg.connect_timeout_s, _headers(cfg))
    if status in (401, 403):
        raise LLMFailureError(
            f"llm.endpoints: {redact_url(url)} refused the api key (HTTP {status} on GET /models); "
            f"check llm.api_key_env (the NAME of the variable holding the key: {cfg.api_key_env or 'not set'})"
        )
    return _model_ids(body) if status == 200 else None


def served_model(url: str, cfg: LLMConfig, timeout_s: float | None = None) -> str:
    """The first model `url` serves, for an empty `llm.model`; one-line errors for a dead or silent server."""
    try:
        models = list_models(url, cfg, timeout_s)
    except Unanswered as exc:
        raise LLMFailureError(f"llm.endpoints: {redact_url(url)} did not answer GET /models ({exc}); {CHECK}") from exc
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
        except Unanswered as exc:
            dead.append(f"{redact_url(url)}: {exc}")
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


# --------------------------------------------------------------------------- the local server's health
def is_serving(url: str, model: str, timeout_s: float = 2.0) -> bool:
    """True when `url`/models answers and lists `model`."""
    try:
        status, body = request("GET", url.rstrip("/") + "/models", timeout_s)
    except Unanswered:
        return False
    return status == 200 and model in (_model_ids(body) or [])


def health_ok(root: str, timeout_s: float = 10.0) -> bool:
    """True when `root`/health (the server's root, not its /v1 API) answers 200."""
    try:
        return request("GET", root.rstrip("/") + "/health", timeout_s)[0] == 200
    except Unanswered:
        return False


def health_problem(root: str, url: str, model: str, completion_timeout_s: float) -> str | None:
    """None when `root`/health answers 200 and a one-token completion at `url` succeeds; else what failed."""
    try:
        status = request("GET", root.rstrip("/") + "/health", 10.0)[0]
        if status != 200:
            return f"/health answered HTTP {status}"
        body = {"model": model, "prompt": "Hi", "max_tokens": 1, "temperature": 0.0}
        status = request("POST", url.rstrip("/") + "/completions", completion_timeout_s, body=body)[0]
    except Unanswered as exc:
        return str(exc)
    return f"a one-token completion answered HTTP {status}" if status != 200 else None
