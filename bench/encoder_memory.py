"""Benchmark: the default encoder's resident memory as it encodes more and more real chunks, with OpenVINO's
per-shape runtime cache off (fi-spark's setting) and at OpenVINO's default, side by side.

    python -m bench.encoder_memory                        # 9,000 chunks, RSS every 1,500 (~5 minutes on 2 cores)
    python -m bench.encoder_memory --chunks 3000 --step 500

Each setting runs in a process of its own (a fresh heap), loads the encoder as the match stage does
(fi_spark.embed.encoder.load_encoder with EmbedConfig() as shipped, only fi_spark.embed.onnx.
RUNTIME_CACHE_CAPACITY changed) and encodes the benchmark corpus's chunks (bench.encoder.real_chunks) in calls of
250, as match's partitions do, printing the process's RSS after every --step chunks. The table shows both
columns and the growth after the first step (buffers sized by the first batches are in the first step).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.harness.peers import run_peer
from bench.harness.table import print_table

CALL = 250  # chunks per encode call
SETTINGS = {"off (fi-spark)": 0, "OpenVINO default": None}


def one(capacity: int | None, n_chunks: int, step: int, cache_dir: str | None) -> None:
    """In a child process: RSS (MB) and seconds after every `step` chunks, as one JSON line."""
    import psutil

    from bench.encoder import CORPUS, real_chunks
    from fi_spark.config.embed import EmbedConfig
    from fi_spark.embed import onnx
    from fi_spark.embed.encoder import encode, load_encoder

    onnx.RUNTIME_CACHE_CAPACITY = capacity
    chunks = real_chunks(CORPUS, n_chunks)[0][:n_chunks]
    cfg = EmbedConfig(cache_dir=cache_dir)
    model = load_encoder(cfg)
    me, points, start = psutil.Process(), [], time.perf_counter()
    for lo in range(0, len(chunks), CALL):
        encode(model, chunks[lo : lo + CALL], cfg.batch_size)
        done = min(lo + CALL, len(chunks))
        if done % step == 0 or done == len(chunks):
            points.append((done, me.memory_info().rss / 2**20, time.perf_counter() - start))
    print(json.dumps({"points": points}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=9000)
    ap.add_argument("--step", type=int, default=1500, help="a multiple of 250")
    ap.add_argument("--cache-dir", default=None, help="embed.cache_dir for the ONNX export (default: the user's)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one setting may run")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        one(None if args.one == "none" else int(args.one), args.chunks, args.step, args.cache_dir)
        return
    columns = {}
    for name, capacity in SETTINGS.items():
        cmd = [sys.executable, "-m", "bench.encoder_memory", "--one", str(capacity).lower(), "--chunks",
               str(args.chunks), "--step", str(args.step)]  # fmt: skip
        cmd += ["--cache-dir", args.cache_dir] if args.cache_dir else []
        run = run_peer(name, cmd, timeout_s=args.timeout, cwd=Path(__file__).resolve().parents[1])
        print(run.row(), flush=True)
        if not run.ok or run.result is None:
            raise SystemExit(f"encoder_memory: {run.row()}")
        columns[name] = run.result["points"]
    names = list(columns)
    headers = ["chunks", *(f"RSS MB, runtime cache {n}" for n in names), "seconds, off / default"]
    rows = [[f"{r[0][0]:,}", *(f"{x[1]:,.0f}" for x in r), f"{r[0][2]:.0f} / {r[1][2]:.0f}"]
            for r in zip(*columns.values(), strict=True)]  # fmt: skip
    print()
    print_table(headers, rows)
    growth = {n: c[-1][1] - c[0][1] for n, c in columns.items()}
    print("\ngrowth after the first step: " + ", ".join(f"{n} {g:+,.0f} MB" for n, g in growth.items()))


if __name__ == "__main__":
    main()
