"""Benchmark: where the embedded engine's memory goes -- Sail's RSS through a shuffle into a Python UDF.

    python -m bench.engine_memory                                  # the default grid, ~2 minutes
    python -m bench.engine_memory --rows 30000,300000 --batch-rows 8192,1024 --partitions 2,8

No fi_spark stage runs here: only the shape every stage has (read a table, hash-repartition it by a key, a
mapInPandas that passes its batches through, write the result), so what grows is the engine's, not ours.
Each cell runs in a process of its own with a fresh embedded Sail server (Sail reads its settings once, at
start): it writes N rows of ~2 KB of text, then runs the shuffle with `--partitions` output partitions and
Sail's execution batch size (SAIL_EXECUTION__BATCH_SIZE) at each value of `--batch-rows`, sampling its RSS
every 0.05 s. Reported: the RSS growth from the moment the data is written to the peak of the shuffle (MB) and
the seconds of the shuffle. "vs linear" is the ratio of a size's growth to the next smaller size's, divided by
the ratio of their rows (1.0: memory proportional to the data; near 0: flat).

What it showed on this 2-core machine (2026-12-07, `--partitions 2,8`, beside other jobs): the growth is the
shuffle's buffered batches, about partitions x batch rows x row width, up to a ceiling: output partitions that no
running task reads yet queue their batches in memory (DataFusion's repartition, outside Sail's memory pool: a
greedy pool of 256 MB changed nothing). At 8 partitions and Sail's default 8,192 rows per batch the growth was
309, 1,078 and 1,403 MB at 30k, 300k and 1M rows; at 1,024 rows per batch 236, 295 and 260 MB. fi-spark's rows
are wide (a document's text, an LLM prompt), which is why engine.batch_rows sets the embedded engine's batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from bench.harness.peers import run_peer
from bench.harness.table import growth as ratio_to_linear
from bench.harness.table import print_table

ROW_TEXT_REPEATS = 32  # 32 x a 64-character sha256 hex = 2,048 characters of text per row


def child(rows: int, partitions: int, folder: Path) -> None:
    """One cell: this process's own Sail server; prints one JSON line (growth MB, seconds)."""
    import psutil
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").create()
    source = str(folder / "source")
    text = F.sha2(F.col("id").cast("string"), 256)
    spark.range(rows).select("id", F.concat(*[text] * ROW_TEXT_REPEATS).alias("text")).write.parquet(source)
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    frame = spark.read.parquet(source)

    def passthrough(batches):  # type: ignore[no-untyped-def]
        yield from batches

    started = time.monotonic()
    shuffled = frame.repartition(partitions, "id").mapInPandas(passthrough, frame.schema)
    shuffled.write.mode("overwrite").parquet(str(folder / "out"))
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    print(json.dumps({"growth_mb": (peak[0] - base) / 2**20, "seconds": seconds}), flush=True)
    os._exit(0)  # the server's threads need no orderly stop here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="30000,300000,1000000", help="comma-separated row counts")
    parser.add_argument("--batch-rows", default="8192,1024", help="Sail execution batch sizes (rows)")
    parser.add_argument("--partitions", default="8", help="output partitions of the shuffle")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one cell may run")
    parser.add_argument("--child", nargs=3, metavar=("ROWS", "PARTITIONS", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), Path(args.child[2]))
        return
    import tempfile

    sizes = sorted(int(r) for r in args.rows.split(","))
    batches = [int(b) for b in args.batch_rows.split(",")]
    parts = [int(p) for p in args.partitions.split(",")]
    growth: dict[tuple[int, int, int], float] = {}
    rows_out = []
    for p in parts:
        for b in batches:
            for n in sizes:
                with tempfile.TemporaryDirectory(prefix="bench-engine-memory-") as tmp:
                    env = {**os.environ, "SAIL_EXECUTION__BATCH_SIZE": str(b)}
                    cmd = [sys.executable, "-m", "bench.engine_memory", "--child", str(n), str(p), tmp]
                    run = run_peer(f"rows{n}", cmd, timeout_s=args.timeout, env=env)
                if not run.ok or run.result is None:
                    rows_out.append([f"{n:,}", p, f"{b:,}", run.row(), "", ""])
                    continue
                growth[(p, b, n)] = run.result["growth_mb"]
                smaller = [m for m in sizes if m < n and (p, b, m) in growth]
                per10 = ""
                if smaller:
                    m = smaller[-1]
                    per10 = f"{ratio_to_linear(growth[(p, b, m)], growth[(p, b, n)], m, n):.2f}"
                rows_out.append([f"{n:,}", p, f"{b:,}", f"{run.result['growth_mb']:.0f}", per10,
                                 f"{run.result['seconds']:.1f}"])  # fmt: skip
    print_table(["rows (~2 KB each)", "partitions", "batch rows", "RSS growth MB", "vs linear", "s"], rows_out)
    for p in parts:
        big = max(sizes)
        if len(batches) > 1 and all((p, b, big) in growth for b in batches):
            default, *others = batches
            for b in others:
                print(f"engine_memory: {big:,} rows, {p} partitions: batch {b:,} grows "
                      f"{growth[(p, b, big)]:.0f} MB vs {growth[(p, default, big)]:.0f} MB at {default:,} "
                      f"({growth[(p, default, big)] / max(growth[(p, b, big)], 1.0):.1f}x less)")  # fmt: skip


if __name__ == "__main__":
    main()
