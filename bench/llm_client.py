"""Benchmark: fi-spark's async LLM client vs DataTrove's InferenceRunner vs a naive UDF, as a share of server capacity.

The server is fi_spark's fault-injecting test server in a subprocess, configured as a fixed-capacity
"GPU": `--capacity` requests processed at once (default 64), each taking 200-800 ms. Capacity = slots /
mean latency (64 / 0.5 s = 128 requests/s). Every client runs twice, once per `--fault-rates` entry
(default 0 and 0.10; 10% = injected faults of every kind: 429 + Retry-After, 500, 503, timeouts,
dropped connections, truncated and non-JSON bodies, garbled content), on a fresh server each time.

- fi-spark: `fi_spark.llm.complete` (mapInPandas, asyncio client, retries, ledger) with `--tasks` Spark
  tasks, ~1.5x capacity in flight in total, a 3 s request timeout; and once more at 2 tasks with tail
  hedging (`llm.hedge_after_s`, `--hedge-after-s`, default 1 s: in the tail the server's queue is empty, so
  an attempt out longer than the slowest answer, 0.8 s, is stuck; it gets a second copy);
- datatrove: DataTrove 0.10.1's `InferenceRunner` with server_type "endpoint" (its remote,
  OpenAI-compatible server type) pointed at the same server, `LocalPipelineExecutor` with `--dt-workers`
  processes (default 2), the same total in flight, the same number of requests and prompts (read from
  JSONL shards, one per worker, answers written as JSONL). It runs in its own virtualenv
  (bench.harness.datatrove), as a small script this bench writes. For an http://127.0.0.1
  URL DataTrove posts with its own raw-socket helper (no timeout; any status but 200 or a dropped
  connection ends the task); an aborted run is reported as what it answered before it stopped, and a run
  still going after `--peer-timeout` seconds (default 120; with injected timeouts its socket can wait
  forever) is ended and reported as a row "datatrove: hung > 120 s (no figure)" -- the other clients'
  figures are printed all the same;
- naive: a plain Python UDF calling the server synchronously per row (with a simple retry loop, so
  faults do not lose rows), the pattern the async client replaces.
Throughput is reported as % of capacity two ways: "run" = answered rows / seconds of the WHOLE run
(fi-spark: its one Spark action -- task start-up, sending, the retry tail, folding the journal into the
ledger; datatrove: `LocalPipelineExecutor.run()` -- worker start-up, reading, sending, writing; naive:
its count() action); "steady" = answers per second between the 5th and 95th percentile of finish times
(what a client sustains while work is queued). The last line gives the whole-run shares WITH faults
(`--summary-faults`, default 0.10) of fi-spark's default client (no hedging) and naive at 2 tasks, and
DataTrove at its 2 workers; the table has both fault rates.

Then tokens/s of the real local vLLM server (fi_spark.serving.local), if it is installed
(`fi-spark serve-llm --install-only`); `--no-local-model` skips it.

    python -m bench.llm_client            # default: about 6 minutes (+ DataTrove's venv on first use)
    python -m bench.llm_client --quick    # about 2 minutes, smaller runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from bench.harness.datatrove import DEFAULT_CACHE, datatrove_or_reason
from bench.harness.engine import bench_engine, stage_context
from bench.harness.fault_server import ServerSettings, fault_server_process
from bench.harness.peers import run_peer
from bench.harness.table import print_table
from fi_spark.config import Config, EngineConfig, LLMConfig, LocalLLMServerConfig
from fi_spark.llm import complete
from fi_spark.schemas import LLM_RESPONSES
from fi_spark.serving import local as ls

DATATROVE_SCRIPT = r"""
import glob, json, sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter

inp, work, url, workers, in_flight = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


async def rollout(document, generate):
    result = await generate({"messages": [{"role": "user", "content": document.text}], "max_tokens": 64})
    return {"text": result.text, "finished": time.time()}


config = InferenceConfig(server_type="endpoint", model_name_or_path="test-model", endpoint_url=url,
                         max_concurrent_generations=in_flight, metric_interval=3600)
executor = LocalPipelineExecutor(
    pipeline=[JsonlReader(inp), InferenceRunner(rollout, config, JsonlWriter(f"{work}/out", compression=None))],
    tasks=workers, workers=workers, logging_dir=f"{work}/logs")
started = time.time()
error = None
try:
    executor.run()
except Exception as exc:  # a task that stopped on a server error: report what was answered
    while isinstance(getattr(exc, "error", None), Exception):  # ServerError wraps ServerError
        exc = exc.error
    error = f"{type(exc).__name__}: {getattr(exc, 'error', exc)}"
seconds = time.time() - started
finished = []
for path in glob.glob(f"{work}/out/*.jsonl"):
    with open(path) as f:
        finished += [r["finished"] - started for line in f for r in json.loads(line)["metadata"]["rollout_results"]]
print(json.dumps({"seconds": seconds, "finished": finished, "error": error and error[:300]}))
"""


@dataclass
class Run:
    """One client's run: rows answered of rows requested, whole-run seconds, steady answers/s."""

    tool: str
    faults: float
    parallel: int  # Spark tasks or DataTrove workers
    ok: int
    requested: int
    seconds: float
    steady: float
    finished: tuple[float, float, float] | None = None  # first, 95th percentile, last answer (s after start)
    note: str = ""
    missing: str = ""  # a run without figures (a peer that failed or hung): what happened, printed in its row

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")


def timeline(finished_s: list[float]) -> tuple[float, float, float] | None:
    if not finished_s:
        return None
    first, p95, last = np.percentile(np.asarray(finished_s), [0, 95, 100])
    return float(first), float(p95), float(last)


def steady_rate(finished_s: list[float]) -> float:
    """Answers per second between the 5th and 95th percentile of finish times."""
    if len(finished_s) < 20:
        return float("nan")
    t5, t95 = np.percentile(np.asarray(finished_s), [5, 95])
    return 0.9 * len(finished_s) / max(t95 - t5, 1e-9)


def server_settings(capacity: int, latency: str, fault_rate: float) -> ServerSettings:
    lo, hi = (float(x) for x in latency.split(","))
    return ServerSettings(latency_ms=(lo, hi), capacity=capacity, fault_rate=fault_rate, retry_after_s=1, hang_s=30)


def prompts(n: int, tag: str) -> list[str]:
    return [f"{tag} question {i}" for i in range(n)]


def rows(spark, n: int, tag: str):  # type: ignore[no-untyped-def]
    data = [(f"{tag}{i}", json.dumps([{"role": "user", "content": p}])) for i, p in enumerate(prompts(n, tag))]
    return spark.createDataFrame(data, "key string, messages string")


def in_flight_per_worker(capacity: int, workers: int) -> int:
    return math.ceil(capacity * 1.5 / workers)


def run_fispark(engine, url: str, n: int, tasks: int, capacity: int, faults: float, hedge: float | None = None) -> Run:  # type: ignore[no-untyped-def]
    """fi_spark.llm.complete on n rows at `tasks` Spark tasks; answers per second from the ledger's finish times."""
    out = tempfile.mkdtemp(prefix="bench-llm-")
    llm = LLMConfig(
        endpoints=[url],
        model="test-model",
        concurrency=in_flight_per_worker(capacity, tasks),
        partitions=tasks,
        request_timeout_s=3,
        backoff_base_s=0.2,
        backoff_max_s=2,
        max_attempts=8,
        hedge_after_s=hedge,
    )
    cfg = Config(engine=EngineConfig(shuffle_partitions=tasks), llm=llm)
    ctx = stage_context(engine, cfg, out)
    started_ms = time.time() * 1000
    run = complete(ctx.llm_env(), rows(engine.spark, n, f"a{tasks}-{faults:g}-{hedge}-"), stage="bench")
    done = ctx.store.read(LLM_RESPONSES).filter("error_reason IS NULL").select("finished_at_ms").toPandas()
    finished = list((done["finished_at_ms"].to_numpy() - started_ms) / 1000)
    seconds = run.metrics["send_seconds"]
    tool = "fi-spark" if hedge is None else f"fi-spark, hedge {hedge:g} s"
    return Run(tool, faults, tasks, int(run.metrics["ok"]), n, seconds, steady_rate(finished), timeline(finished))


def run_naive(engine, url: str, n: int, tasks: int, faults: float) -> Run:  # type: ignore[no-untyped-def]
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
    df = rows(engine.spark, n, f"n{tasks}-{faults:g}-").repartition(tasks)
    t0 = time.monotonic()
    ok = df.select(udf("messages").alias("c")).filter(F.col("c").isNotNull()).count()
    seconds = time.monotonic() - t0
    return Run("naive", faults, tasks, ok, n, seconds, ok / seconds)


def run_datatrove(python: Path, url: str, n: int, workers: int, capacity: int, faults: float, timeout_s: float) -> Run:
    """DataTrove's InferenceRunner in its own venv, fed the same prompts from one JSONL shard per worker; a run
    that fails or is still going after `timeout_s` is a Run without figures (`missing`)."""
    work = Path(tempfile.mkdtemp(prefix="bench-llm-dt-"))
    (work / "in").mkdir()
    texts = prompts(n, f"d{workers}-{faults:g}-")
    for w in range(workers):
        with open(work / "in" / f"{w:02d}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts) if i % workers == w)
    (work / "run.py").write_text(DATATROVE_SCRIPT, encoding="utf-8")
    root = url.removesuffix("/v1")  # DataTrove appends /v1/chat/completions itself
    cmd = [str(python), str(work / "run.py"), str(work / "in"), str(work), root, str(workers)]
    cmd.append(str(in_flight_per_worker(capacity, workers)))
    # run_peer: output to files and a session of its own (when a task fails, DataTrove's forkserver processes
    # outlive the script, holding its pipes open; they are ended with the session), and a deadline
    run = run_peer("datatrove", cmd, timeout_s=timeout_s)
    if not run.ok or run.result is None:
        return Run("datatrove", faults, workers, 0, n, float("nan"), float("nan"), missing=run.row())
    out = run.result
    note = f"stopped: {out['error'][:120]}" if out["error"] else ""
    done = out["finished"]
    return Run("datatrove", faults, workers, len(done), n, out["seconds"], steady_rate(done), timeline(done), note)


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
    ap.add_argument("--quick", action="store_true", help="smaller runs (about 2 minutes)")
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--latency-ms", default="200,800")
    ap.add_argument("--fault-rates", default="0,0.10", help="one pass per rate, each on a fresh server")
    ap.add_argument("--summary-faults", type=float, default=0.10, help="fault rate of the last line's figures")
    ap.add_argument("--tasks", default="1,2,4", help="fi-spark (and naive) Spark tasks")
    ap.add_argument(
        "--hedge-after-s", type=float, default=1.0, help="also run fi-spark at 2 tasks with llm.hedge_after_s (0: no)"
    )
    ap.add_argument("--dt-workers", type=int, default=2, help="DataTrove LocalPipelineExecutor workers")
    ap.add_argument("--peer-timeout", type=float, default=120, help="seconds a DataTrove run may take (then: a row)")
    ap.add_argument("--clients", default="fi-spark,datatrove,naive", help="which clients to run")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="DataTrove's venv")
    ap.add_argument("--seconds", type=float, default=None, help="target length of each fi-spark run")
    ap.add_argument("--no-local-model", action="store_true")
    args = ap.parse_args()
    # a SIGTERM (`timeout`) unwinds like Ctrl-C, so run_peer's finally ends DataTrove's process session
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING)
    lo, hi = (float(x) for x in args.latency_ms.split(","))
    capacity_rps = args.capacity / ((lo + hi) / 2000)
    seconds = args.seconds or (8.0 if args.quick else 25.0)
    n = int(capacity_rps * seconds)
    naive_rows_per_task = 6 if args.quick else 20
    clients = set(args.clients.split(","))
    dt_python, dt_missing = None, ""
    if "datatrove" in clients:
        dt_python, dt_missing = datatrove_or_reason(Path(args.cache))
    runs: list[Run] = []
    with bench_engine(EngineConfig()) as engine:
        for faults in (float(x) for x in args.fault_rates.split(",")):
            with fault_server_process(server_settings(args.capacity, args.latency_ms, faults), max_seconds=1800) as url:
                for tasks in (int(t) for t in args.tasks.split(",")):
                    if "fi-spark" in clients:
                        runs.append(run_fispark(engine, url, n, tasks, args.capacity, faults))
                    if "fi-spark" in clients and args.hedge_after_s and tasks == 2:
                        runs.append(run_fispark(engine, url, n, tasks, args.capacity, faults, args.hedge_after_s))
                    if "naive" in clients:
                        runs.append(run_naive(engine, url, naive_rows_per_task * tasks, tasks, faults))
                if dt_python is not None:
                    timeout = args.peer_timeout
                    runs.append(run_datatrove(dt_python, url, n, args.dt_workers, args.capacity, faults, timeout))
                elif dt_missing:
                    runs.append(Run("datatrove", faults, args.dt_workers, 0, n, float("nan"), float("nan"),
                                    missing=dt_missing))  # fmt: skip
    print(f"\nserver: {args.capacity} slots, {args.latency_ms} ms -> capacity {capacity_rps:.0f} req/s")
    rows: list[list[object]] = []
    for r in runs:
        if r.missing:  # a peer that failed or hung: what happened, in place of its figures
            rows.append([f"{r.faults:.0%}", r.tool, r.parallel, r.missing, "", "", "", ""])
            continue
        when = " / ".join(f"{t:.1f}" for t in r.finished) if r.finished else ""
        rows.append([f"{r.faults:.0%}", r.tool, r.parallel, f"{r.ok} / {r.requested}", f"{r.seconds:.1f}",
                     f"{r.rate / capacity_rps:.1%}", f"{r.steady / capacity_rps:.1%}",
                     when + (f" {r.note}" if r.note else "")])  # fmt: skip
    print_table(["faults", "client", "tasks/workers", "rows answered / requested", "s", "whole run % cap",
                 "steady % cap", "first / 95% / last answer at s"], rows)  # fmt: skip
    tok_s = None if args.no_local_model else local_model_tokens_per_s(streams=8, max_tokens=64)
    if tok_s:
        print(f"local model: {tok_s:.0f} tok/s")

    def share(tool: str, parallel: int) -> str:
        found = [r for r in runs if r.tool == tool and r.parallel == parallel and r.faults == args.summary_faults]
        if found and found[0].missing:  # "hung > 120 s (no figure)", "failed (...) (no figure)"
            return found[0].missing.removeprefix(f"{tool}: ")
        return f"{found[0].rate / capacity_rps:.1%}" if found else "n/a"

    print(
        f"llm_client: fi-spark {share('fi-spark', 2)} of capacity over the whole run, "
        f"datatrove {share('datatrove', args.dt_workers)}, naive {share('naive', 2)}"
    )


if __name__ == "__main__":
    main()
