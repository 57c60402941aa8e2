"""Journal overhead: answers/s written by the per-answer journal vs the earlier batched one, and what it costs
the client end to end against the test server (no latency, so the journal is the only difference).

    python -m bench.journal [--answers 20000] [--requests 3000]

Prints a table of the four figures, then ends with `journal: per-answer W answers/s (fsync every 1 s),
batched-64 B answers/s; client A req/s with, N without`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.harness.fault_server import FaultServer, ServerSettings
from bench.harness.table import print_table
from fi_spark.config import LLMConfig
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.journal import JournalWriter, to_table
from fi_spark.llm.types import LLMRequest, LLMResult, Sampling

ANSWER = '{"template": "What is the capital of <fi>a country</fi>?", "compatible_document_description": "' + "x" * 200


def results(n: int) -> list[LLMResult]:
    return [LLMResult(request_id=f"{i:064d}", content=ANSWER, parsed=ANSWER, prompt_tokens=120, completion_tokens=60,
                      latency_ms=300.0, server_ms=300.0, attempts=1, endpoint="http://127.0.0.1:1/v1",
                      finished_at_ms=1) for i in range(n)]  # fmt: skip


def per_answer(rows: list[LLMResult], folder: Path) -> float:
    w = JournalWriter(str(folder / "run"), stage="s", model="m", run_id="run", partition=0, fsync_s=1.0)
    t0 = time.perf_counter()
    for r in rows:
        w.add(r)
    w.close()
    return len(rows) / (time.perf_counter() - t0)


def batched(rows: list[LLMResult], folder: Path, size: int = 64) -> float:
    """The journal before: a parquet file per 64 answers (no fsync)."""
    (folder / "old").mkdir()
    t0 = time.perf_counter()
    for n, start in enumerate(range(0, len(rows), size)):
        pq.write_table(
            to_table(rows[start : start + size], stage="s", model="m", run_id="run"), folder / "old" / f"{n}.parquet"
        )
    return len(rows) / (time.perf_counter() - t0)


def client_rate(url: str, n: int, folder: Path | None) -> float:
    adapter = Adapter(model="test-model", sampling=Sampling(max_tokens=16))
    reqs = [LLMRequest(id=f"r{i}-{folder is None}", messages=[{"role": "user", "content": f"q {i}"}]) for i in range(n)]
    writer = JournalWriter(str(folder / "c"), stage="s", model="m", run_id="c", partition=0) if folder else None

    async def go() -> None:
        async with LLMClient(LLMConfig(concurrency=32), [url], adapter, on_result=writer.add if writer else None) as c:
            await c.complete_all(reqs)

    t0 = time.perf_counter()
    asyncio.run(go())
    if writer:
        writer.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=20000)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    rows = results(args.answers)
    with tempfile.TemporaryDirectory() as tmp, FaultServer(ServerSettings()) as srv:
        folder = Path(tmp)
        w, b = per_answer(rows, folder), batched(rows, folder)
        client_rate(srv.url, 300, None)  # warm-up
        without = client_rate(srv.url, args.requests, None)
        with_journal = client_rate(srv.url, args.requests, folder)
    print_table(
        ["measured", "rate"],
        [
            ["journal, per answer (fsync every 1 s)", f"{w:,.0f} answers/s"],
            ["journal, batched 64 per parquet file (before)", f"{b:,.0f} answers/s"],
            ["client against the test server, with the journal", f"{with_journal:,.0f} req/s"],
            ["client against the test server, without", f"{without:,.0f} req/s"],
        ],
    )
    print(f"journal: per-answer {w:,.0f} answers/s (fsync every 1 s), batched-64 {b:,.0f} answers/s; "
          f"client {with_journal:,.0f} req/s with, {without:,.0f} without")  # fmt: skip


if __name__ == "__main__":
    main()
