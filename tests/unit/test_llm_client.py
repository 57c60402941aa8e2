"""The async client against the fault-injecting test server: retries, Retry-After, breaker, bounds, budget."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import pytest

from fi_spark.config import LLMConfig
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, LLMResult, Sampling, request_id
from fi_spark_testkit.fault_server import FAULT_KINDS, FaultServer, ServerSettings

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
FAST = {
    "request_timeout_s": 0.5,
    "connect_timeout_s": 0.5,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "breaker_reset_s": 0.05,
    "max_retry_after_s": 1.0,
}


def _requests(n: int, adapter: Adapter, stage: str = "t") -> list[LLMRequest]:
    out = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"question {i}"}]
        rid = request_id(model=adapter.model, stage=stage, params=adapter.id_params(), messages=msgs)
        out.append(LLMRequest(id=rid, messages=msgs, key=str(i)))
    return out


def _run(
    cfg: LLMConfig, urls: list[str], reqs: list[LLMRequest], adapter: Adapter
) -> tuple[list[LLMResult], LLMClient]:
    async def go() -> tuple[list[LLMResult], LLMClient]:
        async with LLMClient(cfg, urls, adapter) as client:
            return await client.complete_all(reqs), client

    return asyncio.run(go())


def _adapter(schema: dict | None = SCHEMA) -> Adapter:
    return Adapter(model="test-model", sampling=Sampling(max_tokens=16, seed=0), response_schema=schema)


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_clean_run_sends_each_request_once() -> None:
    """Without faults every request succeeds with one HTTP call, identified by its request id."""
    ad = _adapter()
    reqs = _requests(40, ad)
    with FaultServer(ServerSettings(latency_ms=(1, 5))) as srv:
        results, client = _run(LLMConfig(concurrency=8, **FAST), [srv.url], reqs, ad)
        stats = srv.snapshot()
    assert all(r.ok and r.parsed and r.attempts == 1 for r in results)
    assert stats["per_request"] == {r.id: 1 for r in reqs}
    assert client.http_calls == 40 and not client.retries
    assert {r.key for r in results} == {str(i) for i in range(40)}
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 and r.endpoint == srv.url for r in results)


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("429", "http_429"),
        ("500", "http_5xx"),
        ("503", "http_5xx"),
        ("timeout", "timeout"),
        ("drop", "disconnect"),
        ("truncate", "disconnect"),
        ("not_json", "bad_body"),
        ("bad_content", "not_json"),
    ],
)
def test_each_fault_is_retried_with_its_cause(kind: str, cause: str) -> None:
    """One injected fault on the first attempt is retried, recorded by cause, and the row succeeds."""
    ad = _adapter()
    reqs = _requests(6, ad)
    settings = ServerSettings(fault_kinds=(kind,), fault_first_attempts=1, retry_after_s=0.05, hang_s=2.0)
    with FaultServer(settings) as srv:
        results, client = _run(LLMConfig(concurrency=4, breaker_failures=100, **FAST), [srv.url], reqs, ad)
        stats = srv.snapshot()
    assert all(r.ok for r in results), [(r.error_reason, r.error) for r in results]
    assert all(r.retry_causes == [cause] and r.attempts == 2 for r in results)
    assert client.retries == Counter({cause: 6})
    assert set(stats["per_request"].values()) == {2}


def test_tail_hedging_cuts_a_hung_request_short() -> None:
    """With hedge_after_s, a request hung on the server at the end of the stream is answered by a second copy long
    before the request timeout; the hedge is counted, and each request is answered once."""
    ad = _adapter()
    reqs = _requests(6, ad)
    settings = ServerSettings(fault_kinds=("timeout",), fault_first_attempts=1, hang_s=3.0)
    cfg = LLMConfig(concurrency=8, **{**FAST, "request_timeout_s": 5.0}, hedge_after_s=0.1)
    with FaultServer(settings) as srv:
        t0 = time.monotonic()
        results, client = _run(cfg, [srv.url], reqs, ad)
        seconds = time.monotonic() - t0
        stats = srv.snapshot()
    assert all(r.ok and r.attempts == 2 and r.retry_causes == [] for r in results), results
    assert client.retries == Counter({"hedge": 6}) and client.http_calls == 12
    assert seconds < 2.0  # not the 3 s hang, nor the 5 s timeout
    assert set(stats["per_request"].values()) == {2} and set(stats["answered"].values()) == {1}


def test_tail_hedging_waits_for_the_tail() -> None:
    """Hedging starts only once the last request is admitted (the window then holds the last 8 of 16) and a slot
    is free, although every attempt outlasts hedge_after_s."""
    ad = _adapter()
    reqs = _requests(16, ad)
    with FaultServer(ServerSettings(latency_ms=(50, 50))) as srv:
        results, client = _run(LLMConfig(concurrency=2, **FAST, hedge_after_s=0.01), [srv.url], reqs, ad)
    assert all(r.ok for r in results)
    hedged = [int(r.key or "") for r in results if r.attempts > 1]
    assert len(hedged) == client.retries["hedge"] == client.http_calls - 16
    assert all(i >= 8 for i in hedged), hedged  # window = 4 x concurrency = 8


def test_persistent_faults_end_in_reasoned_errors() -> None:
    """A request that always fails ends with retries_exhausted after max_attempts HTTP calls, never raising."""
    ad = _adapter()
    reqs = _requests(5, ad)
    with FaultServer(ServerSettings(fault_kinds=("503",), fault_rate=1.0, retry_after_s=0.0)) as srv:
        results, _ = _run(LLMConfig(concurrency=4, max_attempts=3, breaker_failures=100, **FAST), [srv.url], reqs, ad)
        stats = srv.snapshot()
    assert {r.error_reason for r in results} == {"retries_exhausted"}
    assert all(r.attempts == 3 and "http_5xx" in (r.error or "") and r.content is None for r in results)
    assert set(stats["per_request"].values()) == {3}


def test_garbled_content_retried_boundedly_then_rejected() -> None:
    """Non-schema content is retried schema_retries times, then the row fails with not_json."""
    ad = _adapter()
    reqs = _requests(3, ad)
    with FaultServer(ServerSettings(fault_kinds=("bad_content",), fault_rate=1.0)) as srv:
        results, _ = _run(LLMConfig(concurrency=4, schema_retries=2, **FAST), [srv.url], reqs, ad)
        stats = srv.snapshot()
    assert {r.error_reason for r in results} == {"not_json"}
    assert set(stats["per_request"].values()) == {3}
    assert all(r.content is not None for r in results)  # kept so a person can see what the model said


def test_http_400_is_final_and_not_retried() -> None:
    """A 400 means the request itself is wrong: one call, final http_400 error."""
    ad = _adapter()
    with FaultServer(ServerSettings(fault_kinds=("400",), fault_rate=1.0)) as srv:
        results, _ = _run(LLMConfig(**FAST), [srv.url], _requests(3, ad), ad)
        stats = srv.snapshot()
    assert {r.error_reason for r in results} == {"http_400"}
    assert all(r.final and r.attempts == 1 for r in results)
    assert stats["requests"] == 3


def test_retry_after_is_honoured() -> None:
    """After a 429 with Retry-After the request waits at least that long before its retry."""
    ad = _adapter()
    with FaultServer(ServerSettings(fault_kinds=("429",), fault_first_attempts=1, retry_after_s=0.4)) as srv:
        t0 = time.monotonic()
        results, _ = _run(LLMConfig(**FAST), [srv.url], _requests(4, ad), ad)
        elapsed = time.monotonic() - t0
    assert all(r.ok and r.retry_causes == ["http_429"] for r in results)
    assert elapsed >= 0.4
    assert all(r.total_ms >= 400 for r in results)


def test_breaker_stops_hammering_a_dead_endpoint() -> None:
    """With one dead and one live endpoint all rows succeed and the dead one gets only a few attempts."""
    ad = _adapter()
    reqs = _requests(60, ad)
    cfg = LLMConfig(concurrency=4, breaker_failures=3, **{**FAST, "breaker_reset_s": 30.0})
    with FaultServer(ServerSettings(latency_ms=(2, 5))) as srv:
        results, client = _run(cfg, [_dead_url(), srv.url], reqs, ad)
    assert all(r.ok and r.endpoint == srv.url for r in results)
    dead = client.pool.endpoints[0]
    assert dead.breaker.state == "open"
    assert dead.sent <= 3 + cfg.concurrency  # the failures that opened it, plus those already in flight
    assert client.retries["connect"] == dead.sent


def test_all_endpoints_down_gives_reasoned_errors_quickly() -> None:
    """No live endpoint: every row ends with a reason within the request deadline, nothing raises."""
    ad = _adapter()
    cfg = LLMConfig(concurrency=4, max_attempts=3, request_deadline_s=3.0, **FAST)
    t0 = time.monotonic()
    results, _ = _run(cfg, [_dead_url()], _requests(8, ad), ad)
    assert time.monotonic() - t0 < 10
    assert {r.error_reason for r in results} <= {"retries_exhausted", "endpoints_unavailable"}
    assert all(not r.final for r in results)  # transient: a later run tries again


def test_concurrency_bound_holds() -> None:
    """The server never sees more requests in flight than llm.concurrency."""
    ad = _adapter()
    with FaultServer(ServerSettings(latency_ms=(20, 40))) as srv:
        _run(LLMConfig(concurrency=6, **FAST), [srv.url], _requests(60, ad), ad)
        stats = srv.snapshot()
    assert 4 <= stats["max_in_flight"] <= 6


def test_requests_spread_over_endpoints() -> None:
    """Two equal endpoints share the load (least outstanding)."""
    ad = _adapter()
    with FaultServer(ServerSettings(latency_ms=(5, 10))) as a, FaultServer(ServerSettings(latency_ms=(5, 10))) as b:
        results, _ = _run(LLMConfig(concurrency=8, **FAST), [a.url, b.url], _requests(80, ad), ad)
        sa, sb = a.snapshot()["requests"], b.snapshot()["requests"]
    assert sa + sb == 80 and min(sa, sb) >= 25
    assert all(r.ok for r in results)


def test_token_budget_stops_cleanly() -> None:
    """Once the budget is spent the remaining rows fail with budget_exhausted without an HTTP call."""
    ad = _adapter()
    reqs = _requests(30, ad)
    cfg = LLMConfig(concurrency=2, token_budget=400, **FAST)
    with FaultServer(ServerSettings()) as srv:
        results, client = _run(cfg, [srv.url], reqs, ad)
        stats = srv.snapshot()
    ok = [r for r in results if r.ok]
    stopped = [r for r in results if r.error_reason == "budget_exhausted"]
    assert ok and stopped and len(ok) + len(stopped) == 30
    assert all(r.attempts == 0 for r in stopped)
    assert stats["requests"] == len(ok)
    assert client.budget.spent == sum(r.prompt_tokens + r.completion_tokens for r in ok) <= 400


def test_mixed_faults_every_row_accounted() -> None:
    """20% faults of every kind: each row ends ok or with a reason, and retries are counted per cause."""
    ad = _adapter()
    reqs = _requests(150, ad)
    settings = ServerSettings(latency_ms=(1, 5), fault_rate=0.2, fault_kinds=FAULT_KINDS, retry_after_s=0.05, hang_s=2)
    with FaultServer(settings) as srv:
        results, client = _run(LLMConfig(concurrency=16, max_attempts=8, **FAST), [srv.url], reqs, ad)
        stats = srv.snapshot()
    assert len(results) == 150 and {r.id for r in reqs} == {r.request_id for r in results}
    assert all(r.ok or r.error_reason for r in results)
    assert sum(1 for r in results if r.ok) >= 140
    assert sum(client.retries.values()) == sum(len(r.retry_causes) for r in results) > 0
    assert stats["requests"] == client.http_calls == sum(r.attempts for r in results)


def _grouped(names: list[str], per_group: int, ad: Adapter) -> list[list[LLMRequest]]:
    n = len(names)
    reqs = _requests(n * per_group, ad)
    return [
        [LLMRequest(id=r.id, messages=r.messages, key=r.key, group=name) for r in reqs[g::n]]
        for g, name in enumerate(names)
    ]


def _names_covering(url_lists: list[list[str]], each: int) -> list[str]:
    """Group names chosen so that, under every url list, every endpoint is the first choice of at least `each`
    groups: the test servers' ports are random, so fixed names would leave that coverage to chance."""
    from fi_spark.llm.policy import rendezvous_order

    need = {(u, i): each for u, urls in enumerate(url_lists) for i in range(len(urls))}
    names: list[str] = []
    for g in range(10_000):
        if not any(need.values()):
            return names
        firsts = [(u, rendezvous_order(f"doc-{g}", urls)[0]) for u, urls in enumerate(url_lists)]
        if any(need[f] for f in firsts):
            names.append(f"doc-{g}")
            need.update({f: max(0, need[f] - 1) for f in firsts})
    raise AssertionError("no covering group names")


def test_a_group_goes_to_one_endpoint_and_moves_when_it_is_down() -> None:
    """With 3 endpoints each document's requests all go to its rendezvous endpoint; with that endpoint down they
    all move together to the document's next choice."""
    from fi_spark.llm.policy import rendezvous_order

    ad = _adapter()
    cfg = LLMConfig(concurrency=18, breaker_failures=1, **{**FAST, "breaker_reset_s": 30.0})  # share: 6 in flight
    moved = 0
    with FaultServer() as a, FaultServer() as b, FaultServer() as c:
        cases = ((None, [a.url, b.url, c.url]), (1, [a.url, _dead_url(), c.url]))
        groups = _grouped(_names_covering([urls for _, urls in cases], each=2), 6, ad)
        for down, urls in cases:
            for reqs in groups:
                results, _ = _run(cfg, urls, reqs, ad)
                order = [i for i in rendezvous_order(reqs[0].group or "", urls) if i != down]
                moved += down is not None and rendezvous_order(reqs[0].group or "", urls)[0] == down
                assert all(r.ok for r in results)
                assert {r.endpoint for r in results} == {urls[order[0]]}, reqs[0].group
        sent = [s.snapshot()["requests"] for s in (a, b, c)]
    assert moved >= 2  # some documents had the dead endpoint first, and moved
    assert sum(sent) == 2 * 6 * len(groups) and min(sent) > 0  # every group sent twice; all three endpoints used


def test_cached_tokens_and_server_time_are_reported() -> None:
    """The prefix-cache model reports cached prompt tokens; the client keeps them and the answering latency."""
    ad = _adapter()
    shared = "word " * 40
    reqs = [LLMRequest(id=f"r{i}", messages=[{"role": "user", "content": f"{shared} question {i}"}]) for i in range(3)]
    with FaultServer(ServerSettings(prefix_cache=True, latency_ms=(20, 20))) as srv:
        results, _ = _run(LLMConfig(concurrency=1, **FAST), [srv.url], reqs, ad)
    by_id = {r.request_id: r for r in results}
    assert [by_id[f"r{i}"].cached_tokens for i in range(3)] == [0, 40, 40]  # 40 shared words = 10 blocks of 4
    assert all(r.prompt_tokens == 42 and 20 <= r.server_ms <= r.total_ms for r in results)


def test_a_failing_journal_stops_sending(caplog: pytest.LogCaptureFixture) -> None:
    """When the journal cannot keep an answer (on_result raises: a full disk), that error ends the call at once: no
    HTTP attempt starts after it (each answer would be lost too) and no other request's error is logged unretrieved."""
    import errno
    import gc

    ad = _adapter()
    reqs = _requests(80, ad)
    calls_at_failure: list[int] = []
    client: LLMClient | None = None

    def journal(res: LLMResult) -> None:
        assert client is not None
        if not calls_at_failure:
            calls_at_failure.append(client.http_calls)
        raise OSError(errno.ENOSPC, "No space left on device")

    async def go() -> None:
        nonlocal client
        async with LLMClient(LLMConfig(concurrency=8, **FAST), [srv.url], ad, on_result=journal) as client:
            await client.complete_all(reqs)

    with FaultServer(ServerSettings(latency_ms=(5, 30))) as srv, pytest.raises(OSError) as failed:
        asyncio.run(go())
    gc.collect()
    assert failed.value.errno == errno.ENOSPC
    assert client is not None and client.http_calls == calls_at_failure[0]
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
