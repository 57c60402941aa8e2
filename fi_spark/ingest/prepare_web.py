"""prepare_corpus's web steps: WARC/WET input, web quality filters, MinHash near-dedup.

Three calls from fi_spark.ingest.prepare_corpus, each a no-op unless its config asks for it:
- ``read_web_input`` -- when the input path holds WARC/WET files, one row per page in the JSON-line
  shape of JSONL input (fi_spark.ingest.warc), so the usual parser, normalizer and checks apply;
  pages that cannot become documents arrive with empty text and a ``warc_status`` in their metadata.
- ``filter_web`` -- maps those statuses to reject reasons (warc_http_status, warc_not_text,
  warc_too_large, html_no_main_text) and runs the ``web.filters`` families (Gopher, C4, FineWeb) on
  documents still accepted, optionally after C4 line cleaning, and the ``web.languages`` filter.
- ``near_dedup_step`` -- after exact dedup: kept documents that are near-duplicates (of each other or of
  documents stored by earlier runs) become status ``duplicate`` with reason ``near_duplicate``,
  method ``minhash`` and their similarity; writes ``dup_clusters``; returns metrics (removal rate,
  cluster-size histogram, LSH settings, rounds). Stored documents are signed again on every run (a
  few seconds per 100k documents); a persisted signature table would avoid that for huge corpora.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from fi_spark import storage
from fi_spark.config.text import WebConfig, WebQualityThresholds
from fi_spark.dedup.near_dedup import NearDedupResult, near_dedup
from fi_spark.ingest.documents import InputError, list_input_files
from fi_spark.ingest.warc import WARC_REASONS, is_warc_path, warc_json_lines
from fi_spark.schemas import DOCUMENTS, DUP_CLUSTERS
from fi_spark.stages.base import StageContext
from fi_spark.text.language import check_language
from fi_spark.text.normalize import count_words, text_hash
from fi_spark.text.web_quality import WEB_REASONS, check_web_quality, clean_c4_lines

STAGE = "prepare_corpus"
EXCERPT_CHARS = 200
ROWS_PER_BATCH = 256
CLUSTER_SIZE_BUCKETS = ((2, 2), (3, 5), (6, 10), (11, 100), (101, None))


# ---------------------------------------------------------------------------------------------- input
def read_web_input(ctx: StageContext, path: str) -> DataFrame | None:
    """(value, input_file) rows for WARC/WET input at ``path`` (local or s3://); None when it holds no WARC file."""
    files = list_input_files(path)
    warc = [f for f in files if is_warc_path(f)]
    if not warc:
        return None
    if len(warc) != len(files):
        others = [f for f in files if not is_warc_path(f)]
        raise InputError(f"{path}: mixes WARC/WET files with other files (e.g. {others[0]}); give one kind per run")
    web = ctx.config.web
    extractor, max_bytes = web.extractor, web.max_html_bytes

    def read_files(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for file in batch["input_file"]:
                lines: list[str] = []
                with storage.open_input(file) as stream:  # a remote file: one streamed GET to a local spool
                    for line in warc_json_lines(stream, extractor, max_bytes):
                        lines.append(line)
                        if len(lines) >= ROWS_PER_BATCH:
                            yield pd.DataFrame({"value": lines, "input_file": file})
                            lines = []
                if lines:
                    yield pd.DataFrame({"value": lines, "input_file": file})

    files_df = ctx.spark.createDataFrame([(f,) for f in warc], "input_file string").repartition(len(warc))
    return files_df.mapInPandas(read_files, "value string, input_file string")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- filters
_CHECKED = StructType(
    [
        StructField("text", StringType()),
        StructField("text_hash", StringType()),
        StructField("n_chars", IntegerType()),
        StructField("n_words", IntegerType()),
        StructField("reason", StringType()),
        StructField("detail", StringType()),
    ]
)


def check_texts(
    texts: pd.Series, t: WebQualityThresholds, languages: tuple[str, ...] = (), min_score: float = 0.0
) -> pd.DataFrame:
    """Per text: cleaned text + its hash/counts, or a web reject reason + detail (pure; runs in a pandas UDF)."""
    out: list[tuple] = []
    for text in texts:
        if text is None:  # rows already rejected (the UDF sees every row; their result is discarded)
            out.append((None, None, None, None, None, None))
            continue
        cleaned = clean_c4_lines(text, t) if t.clean_c4_lines else text
        if not cleaned:
            out.append((None, None, None, None, "empty_after_cleaning", f"{len(text)} characters before cleaning"))
            continue
        verdict = check_web_quality(cleaned, t)
        if verdict is None and languages:
            verdict = check_language(cleaned, languages, min_score)
        if verdict is not None:
            out.append((None, None, None, None, verdict[0], verdict[1]))
        elif cleaned is text:
            out.append((None, None, None, None, None, None))  # unchanged: keep the classified values
        else:
            out.append((cleaned, text_hash(cleaned), len(cleaned), count_words(cleaned), None, None))
    return pd.DataFrame(out, columns=[f.name for f in _CHECKED.fields])


def filter_web(classified: DataFrame, web: WebConfig) -> DataFrame:
    """WARC statuses -> reject reasons; then the enabled web quality filters on documents still accepted."""
    status = F.col("metadata").getItem("warc_status")
    mapping = F.create_map(*[F.lit(x) for pair in WARC_REASONS.items() for x in pair])
    warc_failed = status.isNotNull() & (status != "ok")
    df = classified.withColumn("reason", F.when(warc_failed, mapping[status]).otherwise(F.col("reason"))).withColumn(
        "detail", F.when(warc_failed, F.col("metadata").getItem("warc_detail")).otherwise(F.col("detail"))
    )
    if not web.filters and not web.clean_c4_lines and not web.languages:
        return df
    languages, min_score = tuple(web.languages), web.language_min_score

    def check(texts: pd.Series) -> pd.DataFrame:
        return check_texts(texts, web, languages, min_score)

    udf = F.pandas_udf(check, _CHECKED)  # type: ignore[call-overload]
    ok = F.col("reason").isNull() & F.col("text").isNotNull()
    df = df.withColumn("_web", F.when(ok, udf(F.col("text"))))
    failed = F.col("_web.reason").isNotNull()
    return (
        df.withColumn("reason", F.when(failed, F.col("_web.reason")).otherwise(F.col("reason")))
        .withColumn("detail", F.when(failed, F.col("_web.detail")).otherwise(F.col("detail")))
        .withColumn(
            "raw_excerpt", F.when(failed, F.substring("text", 1, EXCERPT_CHARS)).otherwise(F.col("raw_excerpt"))
        )
        .withColumn("text_hash", F.when(failed, F.lit(None)).otherwise(F.coalesce("_web.text_hash", "text_hash")))
        .withColumn("n_chars", F.coalesce("_web.n_chars", "n_chars"))
        .withColumn("n_words", F.coalesce("_web.n_words", "n_words"))
        .withColumn("text", F.when(failed, F.lit(None)).otherwise(F.coalesce("_web.text", "text")))
        .drop("_web")
    )


# ---------------------------------------------------------------------------------------------- near-dedup
def near_dedup_step(ctx: StageContext, decided: DataFrame) -> tuple[DataFrame, dict[str, float], dict[str, int]]:
    """Mark near-duplicates among kept documents; adds ``dup_method`` and ``dup_similarity`` columns."""
    exact_dup = F.col("status") == "duplicate"
    cfg = ctx.config.near_dedup
    if not cfg.enabled:
        decided = decided.withColumn("dup_method", F.when(exact_dup, F.lit("exact")))
        return decided.withColumn("dup_similarity", F.when(exact_dup, F.lit(1.0))), {}, {}

    kept = decided.filter(F.col("status") == "kept").select("doc_id", "text")
    stored = ctx.store.read(DOCUMENTS).select("doc_id", "text")
    result = near_dedup(kept, cfg, lambda df, name: ctx.store.materialize(df, f"{STAGE}/{name}"), stored=stored)
    near = result.duplicates.select(
        F.col("doc_id").alias("nd_doc_id"), F.col("kept_id").alias("nd_kept_id"), F.col("similarity").alias("nd_sim")
    )
    is_near = F.col("nd_doc_id").isNotNull()
    marked = (
        decided.join(near, (F.col("doc_id") == F.col("nd_doc_id")) & (F.col("status") == "kept"), "left")
        .withColumn("dup_method", F.when(is_near, F.lit("minhash")).when(exact_dup, F.lit("exact")))
        .withColumn("dup_similarity", F.when(is_near, F.col("nd_sim")).when(exact_dup, F.lit(1.0)))
        .withColumn("kept_id", F.when(is_near, F.col("nd_kept_id")).otherwise(F.col("kept_id")))
        .withColumn("reason", F.when(is_near, F.lit("near_duplicate")).otherwise(F.col("reason")))
        .withColumn("status", F.when(is_near, F.lit("duplicate")).otherwise(F.col("status")))
        .drop("nd_doc_id", "nd_kept_id", "nd_sim")
    )
    marked = ctx.store.materialize(marked, f"{STAGE}/decided_near")
    added = {DUP_CLUSTERS.name: ctx.store.write(result.clusters, DUP_CLUSTERS)}
    return marked, near_dedup_metrics(result, ctx), added


def near_dedup_metrics(result: NearDedupResult, ctx: StageContext) -> dict[str, float]:
    """Counts for MLflow: removal rate, cluster-size histogram, shingle statuses, LSH settings."""
    clusters, sigs = result.clusters, result.signatures
    sizes = clusters.groupBy("cluster_id").agg(F.count("*").alias("size"))
    bucket = F.lit(None).cast("string")
    for low, high in reversed(CLUSTER_SIZE_BUCKETS):
        label = f"{low}" if low == high else (f"{low}_{high}" if high else f"{low}_plus")
        cond = F.col("size") >= low if high is None else (F.col("size") >= low) & (F.col("size") <= high)
        bucket = F.when(cond, F.lit(label)).otherwise(bucket)
    histogram = {r["b"]: r["n"] for r in sizes.groupBy(bucket.alias("b")).agg(F.count("*").alias("n")).collect()}
    status = {r["status"]: r["count"] for r in sigs.groupBy("status").count().collect()}
    docs = sum(status.values())
    duplicates = clusters.filter(~F.col("kept")).count()
    metrics: dict[str, float] = {
        "near_dedup.documents": docs,
        "near_dedup.duplicates": duplicates,
        "near_dedup.removal_rate": round(duplicates / docs, 6) if docs else 0.0,
        "near_dedup.clusters": sum(histogram.values()),
        "near_dedup.short_docs": status.get("short", 0),
        "near_dedup.empty_docs": status.get("empty", 0),
        "near_dedup.bands": result.bands,
        "near_dedup.rows": result.rows,
        "near_dedup.cc_rounds": result.rounds,
    }
    for low, high in CLUSTER_SIZE_BUCKETS:
        label = f"{low}" if low == high else (f"{low}_{high}" if high else f"{low}_plus")
        metrics[f"near_dedup.cluster_size.{label}"] = histogram.get(label, 0)
    ctx.log.info("%s: near-dedup removed %d of %d documents (%d clusters)", STAGE, duplicates, docs, len(histogram))
    return metrics


def web_reject_metrics(counts: dict[tuple[str, str | None], int]) -> dict[str, float]:
    """Share of all input records rejected by the web filters and by WARC statuses (for MLflow)."""
    total = sum(counts.values())
    web = sum(n for (status, reason), n in counts.items() if status == "rejected" and reason in WEB_REASONS)
    warc = sum(n for (status, reason), n in counts.items() if reason in WARC_REASONS.values())
    if not total:
        return {}
    return {"web.filter_reject_rate": round(web / total, 6), "web.warc_reject_rate": round(warc / total, 6)}
