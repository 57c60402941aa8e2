"""A fault-injecting OpenAI-compatible server for tests and benchmarks -- never a user's default, and not in the
wheel (fi_spark_testkit is a dev-only package at the repository root).

Serves `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`, plus `/stats` (GET) and
`/reset` (POST) for tests. Listens on 127.0.0.1 only. Run it in-process (`FaultServer(...).start()`, a
daemon thread with its own event loop) or as `python -m fi_spark_testkit.fault_server --capacity 64 ...`
(a subprocess keeps its CPU off the benchmark's own interpreter). The subprocess stops by itself
after `--max-seconds`.

Behaviour, all deterministic given the request:
- latency: uniform in `latency_ms`, drawn from a hash of (request id, attempt number);
- capacity: at most `capacity` requests are "on the GPU" at once; the rest queue, as in vLLM's
  scheduler, so throughput is capped at capacity / mean latency;
- faults: an attempt is faulty when hash(seed, request id, attempt number) < `fault_rate` (or when it is
  one of the first `fault_first_attempts` of its request); its kind is drawn from `fault_kinds`:
  429 (+ Retry-After), 500, 503, timeout (sits on the request for `hang_s`), drop (closes without
  answering), truncate (promises a body, sends half), not_json (an HTML 200), bad_content (a 200 whose
  content is not valid for the schema), and, only when asked for, 400;
- answers: with a `response_format` json_schema (or vLLM `structured_outputs.json`), a minimal valid
  instance of the schema; with vLLM `structured_outputs.choice`, its first value; otherwise an echo of
  the last user message; with `prompt_logprobs`, scripted per-word prompt logprobs (fi_spark_testkit.scripted);
- counters: HTTP requests per request id (the `X-Request-Id` header, else a hash of the body), and
  *answered* requests per id (a 200 with a usable answer). An answer counts as *acknowledged* once the
  client sends another request on the same keep-alive connection: the client has then read it (and
  fi_spark's client has journaled it, see fi_spark.llm.client). Answers still unacknowledged when a client
  dies were "on the wire" (`unacked` in /stats): the kill-and-resume tests allow only those to be re-sent;
- prefix cache (`prefix_cache=True`): like vLLM's automatic prefix caching, the prompt is hashed in
  blocks of `prefix_block` words, and `usage.prompt_tokens_details.cached_tokens` reports the words of
  the longest block-aligned prefix this server saw before (each server instance has its own cache).

It implements fi_spark.serving.base.InferenceServer (`endpoints()`, `model`, `capacity`, `heal()`), so a test
hands it to `complete(..., server=srv)` or `StageContext.llm_env(server=srv)`; `heal()` records its reason in
`heals` and answers `heal_answer`.

It is a small hand-written HTTP/1.1 server on asyncio streams rather than a web framework, because
the faults (half bodies, dropped connections) are written at the socket level.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fi_spark.llm.schema_instance import minimal_instance
from fi_spark_testkit.scripted import prompt_logprobs

FAULT_KINDS = ("429", "500", "503", "timeout", "drop", "truncate", "not_json", "bad_content")
ALL_FAULT_KINDS = (*FAULT_KINDS, "400")  # a 400 is final (never retried), so it is not injected by default


@dataclass(frozen=True)
class ServerSettings:
    latency_ms: tuple[float, float] = (0.0, 0.0)
    capacity: int = 0  # 0 = unlimited
    fault_rate: float = 0.0
    fault_first_attempts: int = 0  # additionally, the first N attempts of every request are faulty
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_s: float = 1.0
    hang_s: float = 30.0
    seed: int = 0
    model: str = "test-model"
    prefix_cache: bool = False
    prefix_block: int = 4  # words per cache block

    def __post_init__(self) -> None:
        unknown = set(self.fault_kinds) - set(ALL_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(ALL_FAULT_KINDS)}")


def _from_query(schema: dict[str, Any], last: str) -> dict[str, Any] | None:
    """A genericize.v2 answer (a slot named by the query's own last long word) for a `Query: ...` prompt; None
    otherwise. A minimal schema instance would name text that is not in the query (`slot_not_in_query`)."""
    props = schema.get("properties") or {}
    query = last.split("Query:", 1)[1].strip() if "Query:" in last else ""
    words = [w for w in query.replace("?", " ").split() if len(w) > 3 and w.isalpha()]
    if "slots" not in props or "compatible_document_description" not in props or not words:
        return None
    description = "A document that describes the thing and answers the question."
    return {"slots": [{"text": words[-1], "description": "a thing asked about"}],
            "compatible_document_description": description}  # fmt: skip


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Stats:
    requests: int = 0
    ok: int = 0
    per_request: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # 200s with a usable answer, per request id
    unacked: dict[int, str] = field(default_factory=dict)  # connection -> its last answer, not yet acknowledged
    outcomes: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0  # on the "GPU" (inside capacity)
    connections: int = 0
    cached_tokens: int = 0
    authorization: Counter[str] = field(default_factory=Counter)  # completion requests per Authorization header

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "per_request": dict(self.per_request),
            "answered": dict(self.answered),
            "unacked": sorted(self.unacked.values()),
            "outcomes": dict(self.outcomes),
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "cached_tokens": self.cached_tokens,
            "authorization": dict(self.authorization),
        }


class FaultServer:
    """`with FaultServer(ServerSettings(...)) as srv: srv.url` -> 'http://127.0.0.1:PORT/v1'."""

    capacity: int | None = None  # InferenceServer: no batch limit for `complete` to respect

    def __init__(self, settings: ServerSettings | None = None, port: int = 0, heal_answer: bool = False) -> None:
        self.settings = settings or ServerSettings()
        self.port = port
        self.heal_answer = heal_answer  # what heal() says: True makes `complete` send its failed rows once more
        self.heals: list[str] = []  # the reason of every heal() call
        self.stats = Stats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._gpu: asyncio.Semaphore | None = None
        self._blocks: set[str] = set()  # prefix-cache block hashes
        self._conn_ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---------------------------------------------------------------- fi_spark.serving.base.InferenceServer
    def endpoints(self) -> list[str]:
        return [self.url]

    @property
    def model(self) -> str:
        return self.settings.model

    def heal(self, reason: str, logger: object = None) -> bool:
        self.heals.append(reason)
        return self.heal_answer

    # ---------------------------------------------------------------- lifecycle
    async def serve(self) -> None:
        """Bind and serve on the running loop (used by the thread and by `python -m`)."""
        self._gpu = asyncio.Semaphore(self.settings.capacity) if self.settings.capacity else None
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> FaultServer:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._drain())
            loop.close()

        self._thread = threading.Thread(target=run, name="llm-fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test server did not start within 10 s")
        return self

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _drain(self) -> None:
        """Close the listener and cancel open connections (a hanging "timeout" fault among them)."""
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultServer:  # noqa: PYI034 - typing.Self needs 3.11, we support 3.10
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.stats.snapshot()

    def reset(self) -> None:
        with self._lock:
            self.stats = Stats()
            self._blocks = set()

    # ---------------------------------------------------------------- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.stats.connections += 1
            conn = next(self._conn_ids)  # never reused, also across `reset()`
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                with self._lock:  # a new request on this connection: the client has read the previous answer
                    self.stats.unacked.pop(conn, None)
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._route(method, path.split("?")[0], headers, body, writer, conn)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # server shutdown: end the connection quietly
            return
        finally:
            writer.close()

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter, conn: int
    ) -> bool:
        if method == "GET" and path in ("/health", "/v1/health"):
            return await _send(writer, 200, b"{}")
        if method == "GET" and path == "/v1/models":
            return await _send(
                writer, 200, json.dumps({"object": "list", "data": [{"id": self.settings.model}]}).encode()
            )
        if method == "GET" and path == "/stats":
            return await _send(writer, 200, json.dumps(self.snapshot()).encode())
        if method == "POST" and path == "/reset":
            self.reset()
            return await _send(writer, 200, b"{}")
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            return await self._complete(path.endswith("chat/completions"), headers, body, writer, conn)
        return await _send(writer, 404, b'{"error": {"message": "not found"}}')

    async def _complete(
        self, chat: bool, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter, conn: int
    ) -> bool:
        s = self.settings
        rid = headers.get("x-request-id") or hashlib.sha256(body).hexdigest()
        with self._lock:
            attempt = self.stats.per_request[rid]
            self.stats.per_request[rid] += 1
            self.stats.requests += 1
            self.stats.authorization[headers.get("authorization", "")] += 1
        fault = None
        faulty = attempt < s.fault_first_attempts or _unit(s.seed, rid, attempt, "fault") < s.fault_rate
        if s.fault_kinds and faulty:
            fault = s.fault_kinds[int(_unit(s.seed, rid, attempt, "kind") * len(s.fault_kinds))]
        self._count(fault or "ok")
        try:
            req = json.loads(body)
        except ValueError:
            return await _send(writer, 400, b'{"error": {"message": "body is not JSON"}}')
        if fault in ("400", "429", "500", "503"):
            extra = {"Retry-After": f"{s.retry_after_s:g}"} if fault in ("429", "503") else {}
            return await _send(writer, int(fault), b'{"error": {"message": "injected"}}', extra)
        if fault == "drop":
            return False
        if fault == "timeout":
            await asyncio.sleep(s.hang_s)
            return False
        lo, hi = s.latency_ms
        await self._on_gpu((lo + (hi - lo) * _unit(s.seed, rid, attempt, "latency")) / 1000)
        if fault == "not_json":
            return await _send(writer, 200, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
        payload = json.dumps(self._answer(chat, req, rid, bad=fault == "bad_content")).encode()
        if fault == "truncate":
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            writer.write(head.encode() + payload[: len(payload) // 2])
            await writer.drain()
            return False
        with self._lock:
            self.stats.ok += 1
            if fault is None:
                self.stats.answered[rid] += 1
                self.stats.unacked[conn] = rid
        return await _send(writer, 200, payload)

    async def _on_gpu(self, seconds: float) -> None:
        if self._gpu is not None:
            await self._gpu.acquire()
        try:
            with self._lock:
                self.stats.in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            await asyncio.sleep(seconds)
        finally:
            with self._lock:
                self.stats.in_flight -= 1
            if self._gpu is not None:
                self._gpu.release()

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.stats.outcomes[outcome] += 1

    def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
        if chat:
            messages = req.get("messages") or [{}]
            prompt = " ".join(str(m.get("content", "")) for m in messages)
            last = str(messages[-1].get("content", ""))
        else:
            prompt = last = str(req.get("prompt", ""))
        schema = ((req.get("response_format") or {}).get("json_schema") or {}).get("schema")
        schema = schema or (req.get("structured_outputs") or {}).get("json")
        choices = (req.get("structured_outputs") or {}).get("choice")  # vLLM's choice constraint: its first value
        if bad:
            content = '{"answer": ' if schema else ""
        elif choices:
            content = str(choices[0])
        elif schema:
            content = json.dumps(_from_query(schema, last) or minimal_instance(schema, seed_text=f"a{rid[:8]}"))
        else:
            content = f"echo: {last[:60]}"
        words = prompt.split()
        usage: dict[str, Any] = {"prompt_tokens": len(words), "completion_tokens": max(1, len(content.split()))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.settings.prefix_cache:
            usage["prompt_tokens_details"] = {"cached_tokens": self._cache_prefix(words)}
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": content}} if chat else {"text": content})
        extra = {"prompt_logprobs": prompt_logprobs(req.get("messages") or [])} if "prompt_logprobs" in req else {}
        return {
            "id": f"cmpl-{rid[:16]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.settings.model,
            "choices": [choice],
            "usage": usage,
            **extra,
        }

    def _cache_prefix(self, words: list[str]) -> int:
        """Words of the longest cached block-aligned prefix; then cache every full block of this prompt."""
        block = self.settings.prefix_block
        hashes = [
            hashlib.sha256(" ".join(words[:end]).encode()).hexdigest() for end in range(block, len(words) + 1, block)
        ]
        with self._lock:
            hits = 0
            for h in hashes:
                if h not in self._blocks:
                    break
                hits += 1
            self._blocks.update(hashes)
            self.stats.cached_tokens += hits * block
        return hits * block


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str] | None = None) -> bool:
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Status")
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="fault-injecting OpenAI-compatible test server (127.0.0.1 only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--capacity", type=int, default=0, help="requests processed at once (0 = unlimited)")
    ap.add_argument("--latency-ms", default="0,0", help="min,max uniform latency")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--fault-kinds", default=",".join(FAULT_KINDS))
    ap.add_argument("--fault-first-attempts", type=int, default=0)
    ap.add_argument("--retry-after-s", type=float, default=1.0)
    ap.add_argument("--hang-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix-cache", action="store_true", help="report cached_tokens of shared prompt prefixes")
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = ap.parse_args(argv)
    lo, hi = (float(x) for x in args.latency_ms.split(","))
    settings = ServerSettings(
        latency_ms=(lo, hi),
        capacity=args.capacity,
        fault_rate=args.fault_rate,
        fault_first_attempts=args.fault_first_attempts,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        retry_after_s=args.retry_after_s,
        hang_s=args.hang_s,
        seed=args.seed,
        prefix_cache=args.prefix_cache,
    )
    serve_for(FaultServer(settings, port=args.port), args.max_seconds)


def serve_for(server: FaultServer, seconds: float) -> None:
    """Serve in this process for `seconds`, after printing `listening <url>` (what a parent process waits for)."""

    async def run() -> None:
        await server.serve()
        print(f"listening {server.url}", flush=True)
        await asyncio.sleep(seconds)

    asyncio.run(run())


if __name__ == "__main__":
    main()
