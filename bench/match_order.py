"""Benchmark: do match's partitions get whole documents on the embedded engine, at a corpus size, without encoding?

    fi-spark prepare-corpus --documents DOCS.jsonl --output RUN     # e.g. the first 100k corpus documents
    python -m bench.match_order RUN

Match repartitions chunk rows by doc_id, sorts within partitions and hands each partition to mapInPandas.
Sail drops that sort (its plan hashes straight into the Python function), so the rows of a document can
arrive apart: the 100k scale run failed on it. This reads RUN's chunks table as match reads it, through the
same repartition and sort, twice:

- `as stored`: the chunk rows alone (match's rows before the fix): how many documents arrive split, i.e.
  other documents' rows between two of theirs (each such document stopped the old match with an error);
- `unit_rows`: fi_spark.match.match.unit_rows (each row with its document's chunk count) through
  fi_spark.embed.documents.complete_documents, as match consumes them: documents and rows out, and how
  many documents came out more than once (must be 0; every document and chunk must come out).

No model runs: the point is the row order, and it takes seconds at 100k documents.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from bench.harness.engine import bench_config, bench_engine, stage_context
from fi_spark.embed.documents import complete_documents
from fi_spark.match.match import unit_rows
from fi_spark.schemas import CHUNKS, DOCUMENTS

SCHEMA = "docs long, rows long, repeated_docs long, split_docs long"


def split_documents(batches: Iterable[pd.DataFrame]) -> int:
    """Documents whose rows reappear after another document's rows (in arrival order)."""
    finished: set[str] = set()
    last, split = None, 0
    for batch in batches:
        for doc in batch["doc_id"]:
            if doc != last:
                if doc in finished:
                    split += 1
                if last is not None:
                    finished.add(last)
                last = doc
    return split


def as_stored(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield pd.DataFrame({"docs": [0], "rows": [0], "repeated_docs": [0], "split_docs": [split_documents(batches)]})


def completed(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    names: list[str] = []
    rows = 0
    for frame in complete_documents(batches):
        names += frame["doc_id"].unique().tolist()
        rows += len(frame)
    yield pd.DataFrame({"docs": [len(set(names))], "rows": [rows], "repeated_docs": [len(names) - len(set(names))],
                        "split_docs": [0]})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder with prepare_corpus's tables")
    args = ap.parse_args()
    cfg = bench_config()
    with bench_engine(cfg) as engine:
        ctx = stage_context(engine, cfg, args.run)
        pending = ctx.store.read(DOCUMENTS).select("doc_id")
        stored = ctx.store.read(CHUNKS).join(pending, "doc_id", "left_semi").withColumn("n_units", F.lit(0))
        parts = cfg.engine.shuffle_partitions
        print(f"{pending.count():,} documents, {stored.count():,} chunks, {parts} partitions")
        print("| rows | documents out | chunks out | documents out twice | documents split on arrival |")
        print("|---|---|---|---|---|")
        for name, rows, fn in (("as stored", stored, as_stored), ("unit_rows", unit_rows(ctx, pending, cfg.embed),
                                                                   completed)):  # fmt: skip
            grouped = rows.repartition(parts, "doc_id").sortWithinPartitions("doc_id", "ordinal")
            t = pd.DataFrame(grouped.mapInPandas(fn, SCHEMA).toPandas()).sum()  # type: ignore[arg-type]
            out = "- | - | -" if fn is as_stored else f"{t['docs']:,} | {t['rows']:,} | {t['repeated_docs']}"
            print(f"| {name} | {out} | {t['split_docs']} |")


if __name__ == "__main__":
    main()
