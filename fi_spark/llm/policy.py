"""Retry timing, circuit breakers, endpoint choice and the token budget -- small, clock-injected pieces.

Retry rule: exponential backoff with *full jitter* (sleep uniform(0, min(cap, base * 2**(n-1)))), the
variant that spreads a burst of failed clients best (AWS architecture blog, "Exponential Backoff And
Jitter"). When the server says `Retry-After`, that wins (capped), plus a little jitter so a throttled
batch does not come back in one wave. It delays that request, not the whole endpoint: pausing a server
for one throttled request idles it (measured: with 2.5% of attempts answered 429/503 + `Retry-After: 1`,
bench/llm_client.py at 2 tasks reached 25% of capacity with endpoint-wide pauses, 66% without, same
transport); under real overload every throttled request waits, so the
load drops anyway, and a dead endpoint is the circuit breaker's job. (`EndpointPool.release` still
takes `retry_after` for callers that want an endpoint-wide pause.)

Breaker rule (per endpoint): `failures` consecutive connection errors / timeouts / 5xx open it; it then
rests `reset_s`, lets one probe through (half-open), closes on the probe's success and re-opens with a
doubled rest (capped at 8x) on its failure. 429 is not a failure: the server is alive and asked us to
slow down, which `Retry-After` handles.

Endpoint choice: least outstanding requests among endpoints whose breaker admits a request and that
are not paused; ties go round-robin. With equal servers this fills each one's batch evenly; a slow or
dead server accumulates outstanding requests or an open breaker and stops receiving new ones.

Affinity (requests with a `group`, e.g. instantiate's ~6 requests of one document): the endpoints are
ranked per group by rendezvous hashing (highest hash of (group, url) first), and the request goes to
the first one in that ranking that is available and below its share of the client's concurrency
(`ceil(concurrency / endpoints)` in flight); so one document's requests meet one server's prefix cache,
and they move -- all to the same next-ranked server -- only when that one is saturated, throttled or
its breaker is open. When every ranked endpoint is at its share, the least-loaded rule above applies.
Rendezvous rather than a hash ring: no ring to build, and removing one endpoint moves only its groups.

Everything takes `now` (a monotonic clock value) as an argument, so unit tests drive time by hand.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import random
import time
from dataclasses import dataclass, field


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter delay before retry number `attempt` (1 = first retry)."""
    return rng.uniform(0.0, min(cap, base * (2 ** max(0, attempt - 1))))


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now_epoch = time.time() if now_epoch is None else now_epoch
    return max(0.0, when.timestamp() - now_epoch)


@dataclass
class CircuitBreaker:
    failures: int = 5
    reset_s: float = 10.0
    state: str = "closed"  # closed | open | half_open
    consecutive: int = 0
    open_until: float = 0.0
    rest_s: float = 0.0
    probe_in_flight: bool = False
    times_opened: int = 0

    def admits(self, now: float) -> bool:
        """Whether a request may be sent now (a pure check; `dispatched` records the send)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self.open_until
        return not self.probe_in_flight

    def dispatched(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
        if self.state == "half_open":
            self.probe_in_flight = True

    def succeeded(self) -> None:
        self.state, self.consecutive, self.probe_in_flight, self.rest_s = "closed", 0, False, 0.0

    def failed(self, now: float) -> None:
        self.consecutive += 1
        if self.state == "half_open" or (self.state == "closed" and self.consecutive >= self.failures):
            self.rest_s = min(self.reset_s * 8, self.rest_s * 2 if self.rest_s else self.reset_s)
            self.state, self.open_until, self.probe_in_flight = "open", now + self.rest_s, False
            self.times_opened += 1

    def ready_at(self) -> float:
        return self.open_until if self.state == "open" else 0.0


@dataclass
class Endpoint:
    url: str
    breaker: CircuitBreaker
    outstanding: int = 0
    paused_until: float = 0.0  # set by Retry-After
    sent: int = 0

    def available(self, now: float) -> bool:
        return now >= self.paused_until and self.breaker.admits(now)


def rendezvous_order(group: str, urls: list[str]) -> list[int]:
    """Indexes of `urls`, best first, for `group` (highest-random-weight hashing)."""

    def weight(url: str) -> bytes:
        return hashlib.blake2b(f"{group}\0{url}".encode(), digest_size=8).digest()

    return sorted(range(len(urls)), key=lambda i: weight(urls[i]), reverse=True)


@dataclass
class EndpointPool:
    endpoints: list[Endpoint]
    share: int | None = None  # in-flight requests per endpoint before a group spills over; None = no bound
    _turn: int = 0
    _orders: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, urls: list[str], failures: int, reset_s: float, concurrency: int | None = None) -> EndpointPool:
        if not urls:
            raise ValueError("EndpointPool needs at least one endpoint URL")
        share = math.ceil(concurrency / len(urls)) if concurrency else None
        return cls([Endpoint(u.rstrip("/"), CircuitBreaker(failures, reset_s)) for u in urls], share)

    def acquire(self, now: float, group: str | None = None) -> Endpoint | None:
        """The endpoint for the next attempt (marked as used), or None when none is available now:
        the group's first available endpoint below its share, else the least-loaded available one."""
        best = self._affine(now, group) if group is not None and len(self.endpoints) > 1 else None
        if best is None:
            best = self._least_loaded(now)
        if best is None:
            return None
        best.breaker.dispatched(now)
        best.outstanding += 1
        best.sent += 1
        return best

    def order(self, group: str) -> list[int]:
        found = self._orders.get(group)
        if found is None:
            if len(self._orders) >= 4096:  # groups arrive adjacent: a small memo is enough
                self._orders.clear()
            found = self._orders[group] = rendezvous_order(group, [ep.url for ep in self.endpoints])
        return found

    def _affine(self, now: float, group: str) -> Endpoint | None:
        for i in self.order(group):
            ep = self.endpoints[i]
            if ep.available(now) and (self.share is None or ep.outstanding < self.share):
                return ep
        return None

    def _least_loaded(self, now: float) -> Endpoint | None:
        n = len(self.endpoints)
        best: Endpoint | None = None
        for i in range(n):
            ep = self.endpoints[(self._turn + i) % n]
            if ep.available(now) and (best is None or ep.outstanding < best.outstanding):
                best = ep
        if best is not None:
            self._turn = (self._turn + 1) % n
        return best

    def release(self, ep: Endpoint, now: float, outcome: str, retry_after: float | None = None) -> None:
        """outcome: ok | failure (breaker counts it) | throttled (429: pause, no breaker count) | cancelled (a
        hedged copy that lost: says nothing about health)."""
        ep.outstanding -= 1
        if retry_after:
            ep.paused_until = max(ep.paused_until, now + retry_after)
        if outcome == "ok":
            ep.breaker.succeeded()
        elif outcome == "failure":
            ep.breaker.failed(now)
        elif ep.breaker.state == "half_open":  # a throttled or cancelled probe says nothing: let another probe go
            ep.breaker.probe_in_flight = False

    def wait_hint(self, now: float) -> float:
        """Seconds until some endpoint may become available (at least a short poll interval)."""
        soonest = min(max(ep.paused_until, ep.breaker.ready_at()) for ep in self.endpoints)
        return min(1.0, max(0.01, soonest - now))


@dataclass
class TokenBudget:
    """A cap on tokens (prompt + completion) spent by one client. Each attempt reserves its worst case
    (estimated prompt + max_tokens) before it is sent, so in-flight requests can never overshoot the cap;
    the reservation is replaced by the real usage when the answer arrives."""

    limit: int | None
    spent: int = 0
    reserved: int = 0
    refused: int = field(default=0)

    def reserve(self, tokens: int) -> bool:
        if self.limit is not None and self.spent + self.reserved + tokens > self.limit:
            self.refused += 1
            return False
        self.reserved += tokens
        return True

    def settle(self, reserved: int, used: int) -> None:
        self.reserved -= reserved
        self.spent += used


def estimate_prompt_tokens(text_chars: int) -> int:
    """A generous prompt-token estimate (about 3 characters per token for English) for budget reservations."""
    return text_chars // 3 + 8
