"""Benchmark: the async pandas-UDF LLM client vs a naive row-at-a-time UDF, as a share of server capacity.

The server is fi_spark's fault-injecting test server in a subprocess, configured as a fixed-capacity
"GPU": `--capacity` requests processed at once (default 64), each taking 200-800 ms, with 10% injected
faults of every kind (429 + Retry-After, 500, 503, timeouts, dropped connections, truncated and non-JSON
bodies, garbled content). Capacity = slots / mean latency (64 / 0.5 s = 128 requests/s).

- async: `fi_spark.llm.complete` (mapInPandas, asyncio client, retries, ledger) with `--tasks` Spark tasks,
  ~1.5x capacity in flight in total;
- naive: a plain Python UDF calling the server synchronously per row (with a simple retry loop, so
  faults do not lose rows), the pattern the async client replaces.
Throughput is reported two ways, as % of capacity: "run" = answered rows / seconds of the whole sending
action (includes start-up and the retry tail: a request hit by an injected timeout waits the client's
3 s timeout, then backs off, so the last rows of a short run trail); "steady" = answers per second
between the 5th and 95th percentile of finish times (what the client sustains while work is queued).
The summary line's async figure is the best steady rate; the naive UDF has no tail worth separating.

Then tokens/s of the real local vLLM server (fi_spark.llm.local_server), if it is installed
(`fi-spark serve-llm --install-only`); `--no-local-model` skips it.

    python bench/llm_client.py            # default: about 3-4 minutes
    python bench/llm_client.py --quick    # about a minute, smaller runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from fi_spark.config import Config, EngineConfig, LLMConfig, LocalLLMServerConfig
from fi_spark.engine import start_engine
from fi_spark.llm import complete
from fi_spark.llm import local_server as ls
from fi_spark.schemas import LLM_RESPONSES
from fi_spark.stages.base import StageContext
from fi_spark.tables import TableStore


def start_server(capacity: int, latency: str, fault_rate: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "fi_spark.llm.testserver",
        "--capacity",
        str(capacity),
        "--latency-ms",
        latency,
        "--fault-rate",
        str(fault_rate),
        "--retry-after-s",
        "1",
        "--hang-s",
        "30",
        "--max-seconds",
        "1800",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        raise RuntimeError(f"test server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def rows(spark, n: int, tag: str):  # type: ignore[no-untyped-def]
    data = [(f"{tag}{i}", json.dumps([{"role": "user", "content": f"{tag} question {i}"}])) for i in range(n)]
    return spark.createDataFrame(data, "key string, messages string")


def run_async(engine, url: str, n: int, tasks: int, capacity: int) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    out = tempfile.mkdtemp(prefix="bench-llm-")
    per_task = math.ceil(capacity * 1.5 / tasks)
    llm = LLMConfig(
        endpoints=[url],
        model="test-model",
        concurrency=per_task,
        partitions=tasks,
        request_timeout_s=3,
        backoff_base_s=0.2,
        backoff_max_s=2,
        max_attempts=8,
    )
    cfg = Config(engine=EngineConfig(shuffle_partitions=tasks), llm=llm)
    ctx = StageContext(engine.spark, engine, cfg, TableStore(engine.spark, out, "delta"), out, logging.getLogger("b"))
    run = complete(ctx.llm_env(), rows(engine.spark, n, f"a{tasks}-"), stage="bench")
    done = ctx.store.read(LLM_RESPONSES).filter("error_reason IS NULL").select("finished_at_ms").toPandas()
    t5, t95 = np.percentile(done["finished_at_ms"].to_numpy(), [5, 95])
    steady = 0.9 * len(done) / max((t95 - t5) / 1000, 1e-9)
    return int(run.metrics["ok"]), run.metrics["send_seconds"], steady


def run_naive(engine, url: str, n: int, tasks: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    endpoint = url + "/chat/completions"

    def call(messages: str) -> str | None:
        body = {"model": "test-model", "messages": json.loads(messages), "max_tokens": 64}
        for _ in range(6):
            try:
                r = httpx.post(endpoint, json=body, timeout=5)
                if r.status_code == 200:
                    return r.json()["choices"][0]["message"]["content"]
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(1.0)
        return None

    udf = F.udf(call, StringType())
    df = rows(engine.spark, n, f"n{tasks}-").repartition(tasks)
    t0 = time.monotonic()
    ok = df.select(udf("messages").alias("c")).filter(F.col("c").isNotNull()).count()
    return ok, time.monotonic() - t0


def local_model_tokens_per_s(streams: int, max_tokens: int) -> float | None:
    cfg = LocalLLMServerConfig()
    if not (ls.is_serving(cfg) or ls.is_installed(cfg)):
        print("local model: not installed (run `fi-spark serve-llm --install-only`); skipped")
        return None
    with ls.local_server(cfg) as url:

        async def one(client: httpx.AsyncClient, i: int) -> int:
            body = {
                "model": cfg.served_model_name,
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "messages": [{"role": "user", "content": f"Write a short paragraph about topic number {i}."}],
            }
            r = await client.post(url + "/chat/completions", json=body, timeout=300)
            return int(r.json()["usage"]["completion_tokens"])

        async def measure(n: int) -> float:
            async with httpx.AsyncClient() as client:
                await one(client, -1)  # warm-up
                t0 = time.monotonic()
                tokens = await asyncio.gather(*(one(client, i) for i in range(n)))
                return sum(tokens) / (time.monotonic() - t0)

        single = asyncio.run(measure(1))
        batched = asyncio.run(measure(streams))
    print(
        f"local model ({cfg.served_model_name}, vLLM CPU): {single:.1f} tok/s single stream, "
        f"{batched:.1f} tok/s with {streams} streams"
    )
    return batched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--latency-ms", default="200,800")
    ap.add_argument("--fault-rate", type=float, default=0.10)
    ap.add_argument("--tasks", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=None, help="target length of each async run")
    ap.add_argument("--no-local-model", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lo, hi = (float(x) for x in args.latency_ms.split(","))
    capacity_rps = args.capacity / ((lo + hi) / 2000)
    seconds = args.seconds or (8.0 if args.quick else 25.0)
    naive_rows_per_task = 6 if args.quick else 20
    server, url = start_server(args.capacity, args.latency_ms, args.fault_rate)
    engine = start_engine(EngineConfig())
    table = []
    try:
        for tasks in (int(t) for t in args.tasks.split(",")):
            a_ok, a_s, steady = run_async(engine, url, int(capacity_rps * seconds), tasks, args.capacity)
            n_ok, n_s = run_naive(engine, url, naive_rows_per_task * tasks, tasks)
            table.append((tasks, a_ok, a_s, a_ok / a_s, steady, n_ok, n_s, n_ok / n_s))
    finally:
        engine.stop()
        server.terminate()
    print(
        f"\nserver: {args.capacity} slots, {args.latency_ms} ms, {args.fault_rate:.0%} faults "
        f"-> capacity {capacity_rps:.0f} req/s"
    )
    print(
        f"{'tasks':>5} | {'async rows':>10} {'s':>6} {'run/s':>7} {'% cap':>6} {'steady/s':>8} {'% cap':>6} | "
        f"{'naive rows':>10} {'s':>6} {'req/s':>7} {'% cap':>6} | {'async/naive':>11}"
    )
    for tasks, a_ok, a_s, a_rps, steady, n_ok, n_s, n_rps in table:
        print(
            f"{tasks:>5} | {a_ok:>10} {a_s:>6.1f} {a_rps:>7.1f} {a_rps / capacity_rps:>6.1%} {steady:>8.1f} "
            f"{steady / capacity_rps:>6.1%} | {n_ok:>10} {n_s:>6.1f} {n_rps:>7.2f} {n_rps / capacity_rps:>6.1%} | "
            f"{a_rps / n_rps:>10.0f}x"
        )
    tok_s = None if args.no_local_model else local_model_tokens_per_s(streams=8, max_tokens=64)
    best_async = max(r[4] for r in table) / capacity_rps
    best_naive = max(r[7] for r in table) / capacity_rps
    z = f"{tok_s:.0f}" if tok_s else "n/a"
    print(f"llm_client: async {best_async:.0%} of capacity, naive {best_naive:.1%}, local model {z} tok/s")


if __name__ == "__main__":
    main()
