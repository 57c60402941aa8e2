"""Stage `ingest_queries`: raw user queries (JSONL / Parquet / CSV) -> `queries`, `query_rejects`.

Every record is parsed and normalized by the pure fi_spark.ingest.queries.classify_query (inside
mapInPandas), so all formats share one rule set (the line-level rules are fi_spark.ingest.jsonline's;
on the embedded engine CSV files are read by fi_spark.ingest.csv_rows). Exact duplicates (same
normalized text, hence the same query_id) keep the copy with the smallest (source_id, raw hash) and reject the others as
`duplicate`; a query stored by an earlier run simply stays stored (the write is an anti-join on
query_id). Accounting: records read = queries kept (new or already stored) + rejects.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config.queries import QueriesConfig
from fi_spark.engine import Capabilities
from fi_spark.ingest.csv_rows import read_csv_records
from fi_spark.ingest.documents import InputError, list_input_files, read_documents, read_in_python
from fi_spark.ingest.queries import classify_query
from fi_spark.schemas import QUERIES, QUERY_REJECTS
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables

STAGE = "ingest_queries"
TABLES = StageTables(writes=(QUERIES, QUERY_REJECTS), funnel=(FunnelStep("queries", "ingested", ("queries",)),))
CLASSIFIED_DDL = (
    "raw_hash string, query_id string, text string, source_id string, source string, n_chars int, "
    "reason string, detail string, raw_excerpt string, input_file string"
)


def run(ctx: StageContext, queries: str | None = None) -> StageResult:
    """Read the query files at `queries` (default: config queries.inputs) into the two tables."""
    started = time.monotonic()
    cfg = ctx.config.queries
    paths = [queries] if queries else list(cfg.inputs)
    if not paths:
        raise InputError("ingest_queries needs input files: pass --queries PATH or set queries.inputs")
    raw = read_queries(ctx.spark, paths, cfg, ctx.engine.caps)
    decided = ctx.store.materialize(decide(classify(raw, cfg)), f"{STAGE}/decided")
    counts = {r["reason"]: int(r["count"]) for r in decided.groupBy("reason").count().collect()}
    added = {
        QUERIES.name: ctx.store.write(decided.where(F.col("reason").isNull()), QUERIES),
        QUERY_REJECTS.name: ctx.store.write(reject_rows(decided), QUERY_REJECTS),
    }
    kept = counts.pop(None, 0)
    result = StageResult(
        STAGE, rows_in=kept + sum(counts.values()), rows_out=kept, rejected=counts, tables=added,
        seconds=time.monotonic() - started,
    )  # fmt: skip
    result.metrics["queries_stored"] = float(ctx.store.count(QUERIES))
    result.check_accounting()
    return result


def read_queries(spark: SparkSession, paths: list[str], cfg: QueriesConfig, caps: Capabilities) -> DataFrame:
    """Rows of (value: one JSON record, input_file) from every input, whatever its format."""
    frames = [_read_path(spark, path, cfg, caps) for path in paths]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _read_path(spark: SparkSession, path: str, cfg: QueriesConfig, caps: Capabilities) -> DataFrame:
    files = None if storage.is_remote(path) else list_input_files(path)  # listed once, for both decisions
    fmt = cfg.format
    if fmt == "auto":
        fmt = "csv" if all(n.endswith((".csv", ".csv.gz")) for n in files or [path]) else "jsonl"
    if fmt != "csv":
        return read_documents(spark, path, caps)  # JSONL and Parquet: prepare_corpus's reader (same JSON rows)
    if files is not None and read_in_python(files, caps):
        return read_csv_records(spark, files)  # Sail's CSV reader fails on one ragged row, Spark's on a cut .gz
    frame = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(path)
    value = F.to_json(F.struct(*[F.col(c) for c in frame.columns]))
    return frame.select(value.alias("value"), F.lit(path).alias("input_file"))


def classify(raw: DataFrame, cfg: QueriesConfig) -> DataFrame:
    """Parse, normalize and check each record (Python, once per row)."""
    return raw.mapInPandas(partial(_classify_batches, cfg), CLASSIFIED_DDL)


def _classify_batches(cfg: QueriesConfig, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    columns = [c.split(" ")[0] for c in CLASSIFIED_DDL.split(", ")]
    for batch in batches:
        rows = []
        for value, input_file in zip(batch["value"], batch["input_file"], strict=True):
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("utf-8", errors="replace")
            if value is None or not str(value).strip():
                continue  # blank lines are layout, not records
            rows.append({**asdict(classify_query(str(value), cfg)), "input_file": input_file})
        yield pd.DataFrame(rows, columns=columns, dtype=object)


def decide(classified: DataFrame) -> DataFrame:
    """Mark exact duplicates (same query_id) after the first as `duplicate`; add a unique reject_id."""
    ok = F.col("reason").isNull()
    first = Window.partitionBy("query_id").orderBy(F.asc_nulls_last("source_id"), "raw_hash", "input_file")
    dup = ok & (F.row_number().over(first) > 1)
    occurrence = F.row_number().over(Window.partitionBy("input_file", "raw_hash").orderBy("query_id"))
    same = F.concat(F.lit("same text as "), "query_id")
    reject_id = F.sha2(F.concat_ws("\u001f", "input_file", "raw_hash", occurrence.cast("string")), 256)
    return (
        classified.withColumn("detail", F.when(dup, same).otherwise(F.col("detail")))
        .withColumn("reason", F.when(dup, F.lit("duplicate")).otherwise(F.col("reason")))
        .withColumn("reject_id", reject_id)
    )


def reject_rows(decided: DataFrame) -> DataFrame:
    return decided.where(F.col("reason").isNotNull()).withColumn(
        "query_id", F.when(F.col("reason") == "duplicate", F.col("query_id"))
    )
