"""Benchmark: prepare_corpus docs/s on the embedded (Sail) and classic (PySpark local) engines.

    .venv/bin/python bench/prepare_corpus.py [--corpus ../shared/bench/corpus.jsonl.gz] [--sizes 1000 10000]

Takes the first N documents of the benchmark corpus (real text: reviews, Usenet, news, books), runs the
whole stage (read, normalize, filter, exact dedup, chunk, write Delta/Parquet) into a fresh folder,
and prints a table side by side, the growth of time with size, and a one-line summary as the last line.
Engine start-up is excluded from the stage time and reported on its own.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fi_spark.config import load_config  # noqa: E402
from fi_spark.engine import start_engine  # noqa: E402
from fi_spark.ingest import prepare_corpus  # noqa: E402
from fi_spark.stages.base import StageContext  # noqa: E402
from fi_spark.tables import TableStore, resolve_format  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "bench" / "corpus.jsonl.gz"


def make_inputs(corpus: Path, sizes: list[int], folder: Path) -> dict[int, Path]:
    out = {}
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(max(sizes))]
    for n in sizes:
        path = folder / f"docs-{n}.jsonl"
        path.write_text("".join(lines[:n]), encoding="utf-8")
        out[n] = path
    return out


def bench_engine(mode: str, inputs: dict[int, Path], folder: Path) -> tuple[float, dict[int, tuple[float, int, int]]]:
    if mode == "local":
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    config = load_config("local", [f"engine.mode={mode}", "tracking.enabled=false", "engine.local_master=local[2]"])
    started = time.monotonic()
    engine = start_engine(config.engine)
    startup = time.monotonic() - started
    results = {}
    try:
        for n, path in inputs.items():
            out = str(folder / f"{mode}-{n}")
            store = TableStore(engine.spark, out, resolve_format(config.tables, engine.caps))
            ctx = StageContext(engine.spark, engine, config, store, out, logging.getLogger("bench"), out)
            t0 = time.monotonic()
            result = prepare_corpus.run(ctx, str(path))
            results[n] = (time.monotonic() - t0, result.rows_out, int(result.metrics["chunks"]))
    finally:
        engine.stop()
    return startup, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--engines", nargs="+", default=["embedded", "local"], choices=["embedded", "local"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        inputs = make_inputs(args.corpus, sorted(args.sizes), Path(tmp))
        measured = {mode: bench_engine(mode, inputs, Path(tmp)) for mode in args.engines}

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
