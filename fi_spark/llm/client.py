"""The async client: many requests in flight over several OpenAI-compatible endpoints, never raising per row.

Transport: `aiohttp.ClientSession`, not `openai.AsyncOpenAI(max_retries=0)` and not `httpx`. We need
the raw status, the `Retry-After` header and the raw body of every attempt (to tell a truncated or
non-JSON body from a schema failure), our own retry loop, and no per-response pydantic model building;
the openai client would be one more layer to switch off (its retries, exception mapping, parsing).
httpx (what openai uses underneath) was measured too slow for many requests in flight: against our
test server on this 2-core machine, raw POSTs with httpx 0.28.1 reached 85 req/s (16 in flight, no
latency) and 23 req/s (96 in flight, 200-800 ms, 64 server slots), aiohttp 683 and 112 req/s -- the
latter near the server's 128 req/s capacity. One session per event loop, i.e. per Spark partition.

Concurrency: an `asyncio.Semaphore(concurrency)` bounds HTTP attempts in flight; `stream()` keeps
up to `4 * concurrency` requests admitted, so requests sleeping in backoff do not leave the server idle.
Requests are admitted in input order, so a group's requests (kept adjacent by fi_spark.llm.spark) reach
their endpoint (fi_spark.llm.policy, affinity) close together in time.

Tail hedging (`llm.hedge_after_s`, off by default): once `stream()` has admitted its last request, an attempt
unanswered after `hedge_after_s` gets a second copy (same request id) on a free slot, to the endpoint the pool
picks; the first 200 wins and the other copy is cancelled (counted as `retries["hedge"]`). At the end of a run
the slots are idle anyway, and a request hung on the server (or on a dead connection) would otherwise hold the
whole run up for the full request timeout. The cost is duplicate server work on those few requests, and the
journal-before-reuse ordering below holds only approximately for hedged attempts (their answer is read in a
task of its own), which is why it is opt-in.

If `on_result` raises (the journal cannot write: a full disk), the call stops: no further attempt is sent, since
its answer could not be kept either, and `stream` raises that error.

`on_result` (the journal) is called synchronously in the request's own coroutine the moment its result
is final -- no `await` between reading the response and that call -- so the connection that carried the
answer cannot carry another request before the answer is journaled. That ordering is what lets the
kill-and-resume test treat "the client sent another request on that connection" as "journaled".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp

from fi_spark.config.llm import LLMConfig
from fi_spark.llm.adapter import Adapter, BadBody, BadContent
from fi_spark.llm.policy import (
    Endpoint,
    EndpointPool,
    TokenBudget,
    backoff_delay,
    estimate_prompt_tokens,
    parse_retry_after,
)
from fi_spark.llm.types import LLMRequest, LLMResult
from fi_spark.redact import redact_url

WINDOW_FACTOR = 4  # requests admitted per HTTP slot (see module docstring)
CONTENT_REASONS = ("schema_invalid", "not_json", "truncated_output")


class ClientStopped(Exception):
    """Raised in requests still waiting to be sent once `on_result` failed; the call raises that failure instead."""


class LLMClient:
    """Use as `async with LLMClient(cfg, endpoints, adapter) as client: results = await client.complete_all(reqs)`."""

    def __init__(
        self,
        cfg: LLMConfig,
        endpoints: list[str],
        adapter: Adapter,
        *,
        api_key: str | None = None,
        budget: TokenBudget | None = None,
        rng: random.Random | None = None,
        on_result: Callable[[LLMResult], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.adapter = adapter
        self.pool = EndpointPool.of(endpoints, cfg.breaker_failures, cfg.breaker_reset_s, cfg.concurrency)
        self.on_result = on_result
        self.budget = budget or TokenBudget(cfg.token_budget)
        self.rng = rng or random.Random()
        self.http_calls = 0
        self.retries: Counter[str] = Counter()
        self._api_key = api_key
        self._slots: asyncio.Semaphore | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stopped: BaseException | None = None  # on_result failed (the journal's disk is full): send nothing more
        self._draining = asyncio.Event()  # set once stream() admitted its last request: tail hedging may start

    async def __aenter__(self) -> LLMClient:  # noqa: PYI034 - typing.Self needs 3.11, we support 3.10
        self._slots = asyncio.Semaphore(self.cfg.concurrency)
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.cfg.request_timeout_s, connect=self.cfg.connect_timeout_s),
            connector=aiohttp.TCPConnector(limit=self.cfg.concurrency),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def complete_all(self, requests: Iterable[LLMRequest]) -> list[LLMResult]:
        return [r async for r in self.stream(requests)]

    async def stream(self, requests: Iterable[LLMRequest]) -> AsyncIterator[LLMResult]:
        """Results in completion order; pulls the next request only when a window place frees up."""
        it = iter(requests)
        window = self.cfg.concurrency * WINDOW_FACTOR
        pending: set[asyncio.Task[LLMResult]] = set()
        done: set[asyncio.Task[LLMResult]] = set()
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    req = next(it, None)
                    if req is None:
                        exhausted = True
                        self._draining.set()
                    else:
                        pending.add(asyncio.ensure_future(self.complete(req)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if self._stopped is not None:
                    raise self._stopped
                for task in done:
                    yield task.result()
        finally:  # the input failed (a dying Spark task) or the caller stopped: end what is still in flight
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for task in done | pending:  # one error is raised above; the others are not logged as "never retrieved"
                if task.done() and not task.cancelled():
                    task.exception()

    async def complete(self, req: LLMRequest) -> LLMResult:
        """One request to a final result; every failure mode ends in `error_reason`, nothing is raised."""
        res = await self._complete(req)
        res.finished_at_ms = int(time.time() * 1000)
        if self.on_result is not None:
            try:
                self.on_result(res)
            except BaseException as exc:
                self._stopped = self._stopped or exc  # every later answer would be lost the same way: stop sending
                raise
        return res

    async def _complete(self, req: LLMRequest) -> LLMResult:
        assert self._http is not None and self._slots is not None, "use LLMClient inside `async with`"
        res = LLMResult(request_id=req.id, key=req.key)
        start = time.monotonic()
        deadline = start + self.cfg.request_deadline_s
        try:
            body = self.adapter.body(req)
        except ValueError as exc:
            return _fail(res, "bad_request", str(exc), start)
        reserve = estimate_prompt_tokens(len(body)) + self.adapter.sampling.max_tokens
        transport_failures = content_failures = 0
        last_detail = ""
        while True:
            if not self.budget.reserve(reserve):
                return _fail(res, "budget_exhausted", f"token budget {self.budget.limit} reached", start)
            tokens_before = res.prompt_tokens + res.completion_tokens
            kind, cause, detail, wait = await self._attempt(res, body, deadline, req.group)
            self.budget.settle(reserve, res.prompt_tokens + res.completion_tokens - tokens_before)
            if kind == "ok":
                res.total_ms = (time.monotonic() - start) * 1000
                return res
            if kind == "final":
                return _fail(res, cause, detail, start)
            if kind == "unavailable":
                return _fail(res, "endpoints_unavailable", detail, start)
            res.retry_causes.append(cause)
            self.retries[cause] += 1
            last_detail = f"{cause}: {detail}"
            if kind == "content":
                content_failures += 1
                if content_failures > self.cfg.schema_retries:
                    return _fail(res, cause, detail, start)
                continue  # the server is fine; ask again at once
            transport_failures += 1
            if transport_failures >= self.cfg.max_attempts:
                reason = "bad_response" if cause == "bad_body" else "retries_exhausted"
                return _fail(res, reason, f"{res.attempts} attempts, last {last_detail}", start)
            delay = (
                wait
                if wait is not None
                else backoff_delay(transport_failures, self.cfg.backoff_base_s, self.cfg.backoff_max_s, self.rng)
            )
            if time.monotonic() + delay > deadline:
                return _fail(res, "retries_exhausted", f"deadline reached, last {last_detail}", start)
            await asyncio.sleep(delay)

    async def _attempt(
        self, res: LLMResult, body: bytes, deadline: float, group: str | None = None
    ) -> tuple[str, str, str, float | None]:
        """One HTTP attempt -> (kind, cause, detail, wait): kind is ok | final | content | retry | unavailable."""
        assert self._http is not None and self._slots is not None
        async with self._slots:
            ep = None if self._stopped else self.pool.acquire(time.monotonic(), group)
            while ep is None:
                if self._stopped is not None:
                    raise ClientStopped from self._stopped
                now = time.monotonic()
                if now >= deadline:
                    return "unavailable", "", "no endpoint admitted a request before the deadline", None
                await asyncio.sleep(min(self.pool.wait_hint(now), deadline - now))
                ep = self.pool.acquire(time.monotonic(), group)
            res.attempts += 1
            res.endpoint = redact_url(ep.url)  # the ledger keeps no URL credentials
            self.http_calls += 1
            t0 = time.monotonic()
            try:
                if self.cfg.hedge_after_s is None:
                    status, headers, payload = await self._post(ep, body, res.request_id)
                else:
                    ep, answered = await self._hedged(res, ep, body, group)
                    status, headers, payload = answered.result()  # a copy's transport error is raised here
            except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
                self.pool.release(ep, time.monotonic(), "failure")
                return "retry", "timeout", type(exc).__name__, None
            except aiohttp.ClientConnectorError as exc:
                self.pool.release(ep, time.monotonic(), "failure")
                return "retry", "connect", str(exc)[:200] or type(exc).__name__, None
            except aiohttp.ClientError as exc:  # server disconnected, truncated payload, reset, ...
                self.pool.release(ep, time.monotonic(), "failure")
                return "retry", "disconnect", str(exc)[:200] or type(exc).__name__, None
            finally:
                res.latency_ms = (time.monotonic() - t0) * 1000
        return self._judge(res, ep, status, headers, payload)

    async def _post(self, ep: Endpoint, body: bytes, rid: str) -> tuple[int, Any, bytes]:
        assert self._http is not None
        async with self._http.post(ep.url + self.adapter.path, data=body, headers={"X-Request-Id": rid}) as resp:
            return resp.status, resp.headers, await resp.read()

    async def _hedged(
        self, res: LLMResult, ep: Endpoint, body: bytes, group: str | None
    ) -> tuple[Endpoint, asyncio.Future[tuple[int, Any, bytes]]]:
        """`_post` to `ep`, plus at most one second copy once the stream is draining, the first copy has been out
        `hedge_after_s` and a slot is free. Returns the finished copy to judge (its endpoint and task): the first
        200, else the last copy to finish; a copy that failed while the other still runs has its endpoint released
        as a failure, and a copy still running at the end is cancelled and its endpoint released."""
        assert self._slots is not None and self.cfg.hedge_after_s is not None
        primary = asyncio.ensure_future(self._post(ep, body, res.request_id))
        copies = {primary: ep}
        try:
            await asyncio.wait({primary}, timeout=self.cfg.hedge_after_s)
            if not primary.done() and not self._draining.is_set():
                drained = asyncio.ensure_future(self._draining.wait())
                await asyncio.wait({primary, drained}, return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
            while not primary.done() and self._stopped is None:
                second = None if self._slots.locked() else self.pool.acquire(time.monotonic(), group)
                if second is not None:
                    await self._slots.acquire()  # not locked: returns at once
                    res.attempts += 1
                    self.http_calls += 1
                    self.retries["hedge"] += 1
                    hedge = asyncio.ensure_future(self._post(second, body, res.request_id))
                    hedge.add_done_callback(lambda _: self._slots.release() if self._slots is not None else None)
                    copies[hedge] = second
                    break
                await asyncio.wait({primary}, timeout=0.05)  # every slot busy: only in the tail, so poll
            while True:
                done, _ = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task_ep = copies.pop(task)
                    if not copies or (task.exception() is None and task.result()[0] == 200):
                        return task_ep, task
                    self.pool.release(task_ep, time.monotonic(), "failure")  # the other copy may still answer
        finally:
            for task, task_ep in copies.items():  # the losing copy, or every copy when this attempt was cancelled
                task.cancel()
                self.pool.release(task_ep, time.monotonic(), "cancelled")
            if copies:
                await asyncio.gather(*copies, return_exceptions=True)

    def _judge(self, res: LLMResult, ep, status: int, headers, payload: bytes) -> tuple[str, str, str, float | None]:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if status == 200:
            try:
                completion = self.adapter.parse(payload)
            except BadBody as exc:
                self.pool.release(ep, now, "failure")
                return "retry", "bad_body", str(exc), None
            self.pool.release(ep, now, "ok")
            res.prompt_tokens += completion.prompt_tokens
            res.cached_tokens += completion.cached_tokens
            res.completion_tokens += completion.completion_tokens
            res.server_ms += res.latency_ms or 0.0
            res.finish_reason = completion.finish_reason
            res.content = completion.content
            res.logprobs = completion.logprobs
            try:
                self.adapter.check_content(completion)
            except BadContent as exc:
                kind = "final" if exc.reason == "truncated_output" else "content"
                return kind, exc.reason, exc.detail, None
            res.parsed = completion.parsed
            return "ok", "", "", None
        wait = parse_retry_after(headers.get("retry-after"))
        if wait is not None:
            wait = min(wait, self.cfg.max_retry_after_s) + self.rng.uniform(0, min(1.0, self.cfg.backoff_base_s))
        if status == 429:
            self.pool.release(ep, now, "throttled")
            return "retry", "http_429", _excerpt(payload), wait
        if status >= 500 or status == 408:
            self.pool.release(ep, now, "failure")
            return "retry", "http_5xx", f"HTTP {status}: {_excerpt(payload)}", wait
        self.pool.release(ep, now, "ok")
        return "final", "http_400" if status == 400 else "http_4xx", f"HTTP {status}: {_excerpt(payload)}", None


def _fail(res: LLMResult, reason: str, detail: str, start: float) -> LLMResult:
    res.error_reason, res.error, res.parsed = reason, detail[:500], None
    if reason not in CONTENT_REASONS:  # keep what the model said when the content itself was the problem
        res.content = None
    res.total_ms = (time.monotonic() - start) * 1000
    return res


def _excerpt(payload: bytes) -> str:
    return payload[:200].decode("utf-8", "replace")
