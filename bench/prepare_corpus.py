"""Benchmark: prepare_corpus docs/s on the embedded (Sail) and classic (PySpark local) engines.

    python -m bench.prepare_corpus [--corpus ../shared/bench/corpus.jsonl.gz] [--sizes 1000 10000]

Takes the first N documents of the benchmark corpus (real text: reviews, Usenet, news, books), runs the
whole stage (read, normalize, filter, exact dedup, chunk, write Delta/Parquet) into a fresh folder,
and prints a table side by side, the growth of time with size, and a one-line summary as the last line.
Engine start-up is excluded from the stage time and reported on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from bench.harness.data import corpus_path, write_corpus_slice
from bench.harness.engine import bench_config, bench_engine, stage_context
from fi_spark.ingest import prepare_corpus


def make_inputs(corpus: Path, sizes: list[int], folder: Path) -> dict[int, Path]:
    return {n: write_corpus_slice(n, folder / f"docs-{n}.jsonl", corpus) for n in sizes}


def measure_engine(mode: str, inputs: dict[int, Path], folder: Path) -> tuple[float, dict[int, tuple[float, int, int]]]:
    """(engine start seconds, {size: (stage seconds, documents kept, chunks)}) on one engine."""
    config = bench_config(f"engine.mode={mode}", "engine.local_master=local[2]")
    started = time.monotonic()
    results = {}
    with bench_engine(config) as engine:
        startup = time.monotonic() - started
        for n, path in inputs.items():
            ctx = stage_context(engine, config, folder / f"{mode}-{n}")
            t0 = time.monotonic()
            result = prepare_corpus.run(ctx, str(path))
            results[n] = (time.monotonic() - t0, result.rows_out, int(result.metrics["chunks"]))
    return startup, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_path())
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--engines", nargs="+", default=["embedded", "local"], choices=["embedded", "local"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        inputs = make_inputs(args.corpus, sorted(args.sizes), Path(tmp))
        measured = {mode: measure_engine(mode, inputs, Path(tmp)) for mode in args.engines}

    print(f"\nprepare_corpus on {args.corpus.name} ({os.cpu_count()} cores)")
    print(f"{'engine':<10}{'docs':>8}{'seconds':>10}{'docs/s':>10}{'kept':>8}{'chunks':>9}")
    for mode, (startup, results) in measured.items():
        for n, (secs, kept, chunks) in results.items():
            print(f"{mode:<10}{n:>8}{secs:>10.1f}{n / secs:>10.0f}{kept:>8}{chunks:>9}")
        print(f"{mode:<10}{'start':>8}{startup:>10.1f}")
    sizes = sorted(args.sizes)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        for mode, (_, results) in measured.items():
            growth = results[hi][0] / results[lo][0]
            print(f"{mode}: {hi // lo}x the documents took {growth:.1f}x the time")
    if set(measured) == {"embedded", "local"}:
        big = sizes[-1]
        emb, cls = (big / measured[m][1][big][0] for m in ("embedded", "local"))
        print(f"embedded / classic at {big} docs: {emb / cls:.2f}x")
        print(f"prepare_corpus: embedded {emb:.0f} docs/s, classic {cls:.0f} docs/s ({big // 1000}k docs)")


if __name__ == "__main__":
    main()
