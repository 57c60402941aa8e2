"""Retry timing, circuit breaker, endpoint choice and token budget of fi_spark.llm.policy (clock driven by hand)."""

from __future__ import annotations

import random

import pytest

from fi_spark.llm.policy import (
    CircuitBreaker,
    EndpointPool,
    TokenBudget,
    backoff_delay,
    parse_retry_after,
    rendezvous_order,
)


def test_backoff_is_full_jitter_within_exponential_cap() -> None:
    """Each delay lies in [0, min(cap, base * 2**(n-1))] and delays actually vary (jitter)."""
    rng = random.Random(7)
    for attempt in range(1, 12):
        bound = min(5.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 0.5, 5.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.7 * bound and min(delays) < 0.3 * bound
        assert len(set(delays)) > 150


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.25", 0.25), (" 7 ", 7.0), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Retry-After delta-seconds (fractions too) parse; junk is ignored rather than trusted."""
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After becomes the seconds left until that date."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_epoch=1445412500.0) == pytest.approx(10.0)


def test_breaker_opens_probes_and_closes() -> None:
    """N consecutive failures open it; after the rest one probe goes; success closes it."""
    b = CircuitBreaker(failures=3, reset_s=10.0)
    for _ in range(2):
        b.failed(now=0.0)
    assert b.state == "closed" and b.admits(0.0)
    b.failed(now=1.0)
    assert b.state == "open" and not b.admits(5.0)
    assert b.admits(11.0)
    b.dispatched(11.0)
    assert b.state == "half_open" and not b.admits(11.0)  # only one probe at a time
    b.succeeded()
    assert b.state == "closed" and b.consecutive == 0 and b.admits(11.0)


def test_breaker_failed_probe_reopens_with_longer_rest() -> None:
    """A failed probe re-opens the breaker for twice the rest, capped at 8x."""
    b = CircuitBreaker(failures=1, reset_s=1.0)
    b.failed(now=0.0)
    assert b.open_until == 1.0
    rests = []
    now = 1.0
    for _ in range(6):
        b.dispatched(now)
        b.failed(now)
        rests.append(b.open_until - now)
        now = b.open_until
    assert rests == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_success_resets_consecutive_count() -> None:
    """Failures must be consecutive to open the breaker."""
    b = CircuitBreaker(failures=2, reset_s=1.0)
    b.failed(0.0)
    b.succeeded()
    b.failed(0.0)
    assert b.state == "closed"


def test_pool_prefers_least_outstanding_and_skips_unavailable() -> None:
    """Least outstanding wins; an open breaker or a Retry-After pause takes an endpoint out."""
    pool = EndpointPool.of(["http://a/v1", "http://b/v1", "http://c/v1/"], failures=1, reset_s=5.0)
    a, b, c = pool.endpoints
    assert c.url == "http://c/v1"
    picked = [pool.acquire(0.0) for _ in range(6)]
    assert sorted(ep.url for ep in picked if ep) == sorted([a.url, b.url, c.url] * 2)
    pool.release(a, 0.0, "failure")  # opens a's breaker
    pool.release(b, 0.0, "throttled", retry_after=3.0)  # pauses b
    for _ in range(3):
        ep = pool.acquire(1.0)
        assert ep is c
    assert pool.acquire(3.5) is b  # pause over
    assert pool.acquire(6.0) is a  # breaker rest over: a probe


def test_pool_returns_none_when_all_down_and_hints_wait() -> None:
    """With every endpoint unavailable acquire gives None and the wait hint points at the soonest one."""
    pool = EndpointPool.of(["http://a/v1", "http://b/v1"], failures=1, reset_s=0.5)
    for ep in list(pool.endpoints):
        taken = pool.acquire(0.0)
        assert taken is not None
        pool.release(taken, 0.0, "failure")
        del ep
    assert pool.acquire(0.1) is None
    assert pool.wait_hint(0.1) == pytest.approx(0.4)


def test_pool_needs_endpoints() -> None:
    """An empty endpoint list is a clear error, not a hang."""
    with pytest.raises(ValueError, match="at least one endpoint"):
        EndpointPool.of([], failures=1, reset_s=1.0)


def test_budget_reserves_worst_case_and_settles_actual() -> None:
    """Reservations block overshoot; settling replaces the reservation with real usage."""
    budget = TokenBudget(limit=100)
    assert budget.reserve(60)
    assert not budget.reserve(50)
    budget.settle(60, 20)
    assert budget.spent == 20 and budget.reserved == 0
    assert budget.reserve(80)
    assert not budget.reserve(1)
    assert budget.refused == 2
    assert TokenBudget(limit=None).reserve(10**12)


def test_affinity_keeps_a_group_on_its_endpoint_and_moves_it_when_down_or_saturated() -> None:
    """A group's requests go to its rendezvous endpoint; they spill to the group's next choice when that one is
    at its share of the concurrency or its breaker is open, and come back once it is free again."""
    urls = ["http://a/v1", "http://b/v1", "http://c/v1"]
    pool = EndpointPool.of(urls, failures=1, reset_s=10.0, concurrency=6)  # share: 2 in flight per endpoint
    first, second = (urls[i] for i in rendezvous_order("doc-1", urls)[:2])
    got = [pool.acquire(0.0, "doc-1") for _ in range(2)]
    assert [ep.url for ep in got if ep] == [first, first]
    spill = pool.acquire(0.0, "doc-1")  # first is at its share: the group's second choice
    assert spill is not None and spill.url == second
    for ep in (*got, spill):
        assert ep is not None
        pool.release(ep, 0.0, "ok")
    back = pool.acquire(0.0, "doc-1")
    assert back is not None and back.url == first
    pool.release(back, 0.0, "failure")  # first's breaker opens (failures=1): the group moves, all of it
    moved = [pool.acquire(1.0, "doc-1") for _ in range(2)]
    assert [ep.url for ep in moved if ep] == [second, second]
    other = next(
        g for g in (f"doc-{i}" for i in range(100)) if urls[rendezvous_order(g, urls)[0]] not in (first, second)
    )
    ep = pool.acquire(1.0, other)  # groups of other endpoints are not affected
    assert ep is not None and ep.url == urls[rendezvous_order(other, urls)[0]]


def test_rendezvous_order_is_stable_and_spreads_groups() -> None:
    """The ranking depends only on (group, urls); removing an endpoint moves only the groups it was first for."""
    urls = ["http://a/v1", "http://b/v1", "http://c/v1"]
    firsts = {g: urls[rendezvous_order(g, urls)[0]] for g in (f"doc-{i}" for i in range(300))}
    assert rendezvous_order("doc-7", urls) == rendezvous_order("doc-7", list(urls))
    assert all(60 <= list(firsts.values()).count(u) <= 140 for u in urls)
    kept = urls[:2]
    moved = {g for g in firsts if kept[rendezvous_order(g, kept)[0]] != firsts[g]}
    assert moved == {g for g, u in firsts.items() if u == urls[2]}
