"""prepare_corpus: raw documents -> ``documents``, ``chunks``, ``duplicates``, ``doc_rejects``.

Steps: read (JSONL / Parquet) -> parse, normalize and check each record (mapInPandas over the pure
fi_spark.ingest.records) -> derive ids -> reject repeated ids -> exact dedup on the normalized-text
hash (survivor: a document stored by an earlier run, else the smallest doc_id) -> write ->
chunk the kept documents (mapInPandas over fi_spark.text.chunking). Sentence starts for chunking come
from the regex in fi_spark.text.chunking, or with ``prepare.sentence_splitter=sparknlp`` from Spark
NLP's SentenceDetector (fi_spark.ingest.sentences, checked when the stage starts).

Every input record ends in exactly one of: documents (kept), duplicates, doc_rejects. The counts come
from one small aggregation over the classified frame and are checked: read = kept + duplicates + rejects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fi_spark.config.text import PrepareConfig
from fi_spark.ingest import prepare_web, sentences
from fi_spark.ingest.documents import read_documents
from fi_spark.ingest.records import classify_record
from fi_spark.schemas import CHUNKS, DOC_REJECTS, DOCUMENTS, DUP_CLUSTERS, DUPLICATES
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.text.chunking import chunk_text, utf16_to_str_offsets
from fi_spark.text.normalize import text_hash
from fi_spark.text.tokenizer import load_tokenizer

STAGE = "prepare_corpus"
TABLES = StageTables(
    writes=(DOCUMENTS, CHUNKS, DUPLICATES, DOC_REJECTS, DUP_CLUSTERS),
    funnel=(
        FunnelStep("documents", "input", ("documents", "duplicates", "doc_rejects")),
        FunnelStep("documents", "kept", ("documents",)),
    ),
)

CLASSIFIED_DDL = (
    "source_id string, url string, text string, text_hash string, raw_hash string, n_chars int, n_words int, "
    "metadata map<string,string>, reason string, detail string, raw_excerpt string, input_file string, blank boolean"
)


def run(ctx: StageContext, documents: str) -> StageResult:
    """Run the stage on the files at ``documents`` and write its four tables under ``ctx.output``."""
    started = time.monotonic()
    cfg = ctx.config.prepare
    # Before any input is read: a cluster without Spark NLP fails here with one sentence (exit 2).
    detector = sentences.build_sentence_detector(ctx.engine) if cfg.sentence_splitter == "sparknlp" else None
    ctx.log.info("%s: reading %s", STAGE, documents)
    raw = prepare_web.read_web_input(ctx, documents)  # WARC/WET input (issue 7); None for JSONL / Parquet
    if raw is None:
        raw = read_documents(ctx.spark, documents, ctx.engine.caps)
    if cfg.partitions:
        raw = raw.repartition(cfg.partitions)
    classified = prepare_web.filter_web(classify(raw, cfg), ctx.config.web)
    stored = ctx.store.read(DOCUMENTS).select("doc_id", "text_hash")
    decided = ctx.store.materialize(decide(classified, stored), f"{STAGE}/decided")
    decided, web_metrics, web_added = prepare_web.near_dedup_step(ctx, decided)  # near_dedup.enabled: on by default
    counts = {(r["status"], r["reason"]): r["count"] for r in decided.groupBy("status", "reason").count().collect()}
    ctx.log.info("%s: classified %d records", STAGE, sum(counts.values()))
    kept = decided.filter(F.col("status") == "kept")
    added = {
        **web_added,
        DOCUMENTS.name: ctx.store.write(kept, DOCUMENTS),
        DUPLICATES.name: ctx.store.write(duplicate_rows(decided), DUPLICATES),
        DOC_REJECTS.name: ctx.store.write(reject_rows(decided), DOC_REJECTS),
    }
    ctx.log.info(
        "%s: chunking kept documents (%d tokens, overlap %d, %s sentences)",
        STAGE,
        cfg.chunk_tokens,
        cfg.chunk_overlap,
        cfg.sentence_splitter,
    )
    docs = kept.select("doc_id", "text")
    if detector is not None:
        docs = sentences.with_sentence_starts(docs, detector)
    chunks = chunk_documents(docs, cfg)
    added[CHUNKS.name] = ctx.store.write(chunks, CHUNKS)
    chunk_stats = (
        ctx.store.read(CHUNKS)
        .join(kept.select("doc_id"), "doc_id", "left_semi")
        .agg(F.count("*").alias("n"), F.avg("n_tokens").alias("avg_tokens"), F.max("n_tokens").alias("max_tokens"))
        .collect()[0]
    )
    result = _result(counts, added, chunk_stats, time.monotonic() - started)
    result.metrics.update({**web_metrics, **prepare_web.web_reject_metrics(counts)})
    return result


def classify(raw: DataFrame, cfg: PrepareConfig) -> DataFrame:
    """Parse and check every record (one pass of Python over the data); adds doc_id.

    `cfg` is handed to the checks as is: PrepareConfig extends fi_spark.config.text.QualityThresholds.
    """
    columns = [c.split(" ")[0] for c in CLASSIFIED_DDL.split(", ")]
    blank_row = dict.fromkeys(columns)

    def classify_batches(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for batch in batches:
            rows = []
            for value, input_file in zip(batch["value"], batch["input_file"]):
                if isinstance(value, (bytes, bytearray)):
                    value = bytes(value).decode("utf-8", errors="replace")
                if value is None or not value.strip():
                    rows.append({**blank_row, "blank": True, "raw_hash": "", "input_file": input_file})
                    continue
                row = asdict(classify_record(value, cfg))
                row.pop("extra")
                rows.append({**row, "input_file": input_file, "blank": False})
            yield pd.DataFrame(rows, columns=columns, dtype=object)

    return assign_ids(raw.mapInPandas(classify_batches, CLASSIFIED_DDL))


def assign_ids(df: DataFrame) -> DataFrame:
    """doc_id = the given id, else 'doc-' + 24 hex of the content hash (+ '-k' for the k-th identical copy)."""
    key = F.coalesce("text_hash", "raw_hash")
    no_id = F.col("source_id").isNull()
    occurrence = F.row_number().over(Window.partitionBy(no_id, key).orderBy("raw_hash", "input_file"))
    derived = F.concat(
        F.lit("doc-"), F.substring(key, 1, 24), F.when(occurrence > 1, F.concat(F.lit("-"), occurrence)).otherwise("")
    )
    return df.filter(~F.col("blank")).withColumn("doc_id", F.when(no_id, derived).otherwise(F.col("source_id")))


def decide(classified: DataFrame, stored: DataFrame) -> DataFrame:
    """Add ``status`` (kept / duplicate / rejected) and ``kept_id``; repeated ids become rejects."""
    ok = F.col("reason").isNull()
    by_id = Window.partitionBy("doc_id", ok).orderBy(F.col("text_hash").asc_nulls_last(), "raw_hash", "input_file")
    df = (
        classified.withColumn("id_rank", F.row_number().over(by_id))
        .withColumn("first_hash", F.first("text_hash").over(by_id))
        .withColumn(
            "detail",
            F.when(
                ok & (F.col("id_rank") > 1), F.concat(F.lit("kept the copy with text hash "), "first_hash")
            ).otherwise(F.col("detail")),
        )
        .withColumn("reason", F.when(ok & (F.col("id_rank") > 1), F.lit("duplicate_id")).otherwise(F.col("reason")))
    )
    # Survivor of each exact-duplicate group: a document stored by an earlier run if there is one (published
    # rows are never replaced), else the smallest doc_id of this run.
    run_min = df.filter(F.col("reason").isNull()).groupBy("text_hash").agg(F.min("doc_id").alias("run_kept"))
    stored_min = stored.groupBy("text_hash").agg(F.min("doc_id").alias("stored_kept"))
    df = (
        df.join(run_min, on="text_hash", how="left")
        .join(stored_min, on="text_hash", how="left")
        .withColumn("kept_id", F.coalesce("stored_kept", "run_kept"))
    )
    status = (
        F.when(F.col("reason").isNotNull(), "rejected")
        .when(F.col("kept_id") == F.col("doc_id"), "kept")
        .otherwise("duplicate")
    )
    return df.withColumn("status", status).withColumn(
        "kept_id", F.when(F.col("status") == "duplicate", F.col("kept_id"))
    )


def duplicate_rows(decided: DataFrame) -> DataFrame:
    return decided.filter(F.col("status") == "duplicate").select(
        "doc_id", "kept_id", F.col("dup_method").alias("method"), F.col("dup_similarity").alias("similarity")
    )


def reject_rows(decided: DataFrame) -> DataFrame:
    return decided.filter(F.col("status") == "rejected").select(
        "doc_id", "reason", "detail", "input_file", "raw_excerpt"
    )


def chunk_documents(docs: DataFrame, cfg: PrepareConfig) -> DataFrame:
    """(doc_id, text[, sentence_starts]) -> CHUNKS rows; the tokenizer is loaded once per Python process.

    With a ``sentence_starts`` column (UTF-16 offsets from fi_spark.ingest.sentences) chunks break at
    those starts; without one, at the regex starts of fi_spark.text.chunking.
    """
    max_tokens, overlap, tokenizer_name = cfg.chunk_tokens, cfg.chunk_overlap, cfg.tokenizer
    columns = CHUNKS.columns
    external = sentences.STARTS in docs.columns

    def chunk_batches(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        tokenizer = load_tokenizer(tokenizer_name)
        for batch in batches:
            rows = []
            given = batch[sentences.STARTS] if external else [None] * len(batch)
            for doc_id, text, jvm_starts in zip(batch["doc_id"], batch["text"], given):
                starts = _str_starts(text, jvm_starts) if external else None
                for c in chunk_text(text, tokenizer, max_tokens, overlap, starts):
                    rows.append(
                        (
                            "c" + text_hash(f"{doc_id}|{c.char_start}|{c.char_end}")[:24],
                            doc_id,
                            c.ordinal,
                            c.char_start,
                            c.char_end,
                            text[c.char_start : c.char_end],
                            c.n_tokens,
                        )
                    )
            yield pd.DataFrame(rows, columns=columns)

    return docs.mapInPandas(chunk_batches, CHUNKS.schema)


def _str_starts(text: str, jvm_starts: Iterable[int] | None) -> list[int]:
    """The detector's UTF-16 begin offsets as str indices; null means no sentence found (token cuts only),
    never a silent fall back to the regex."""
    return utf16_to_str_offsets(text, [] if jvm_starts is None else [int(s) for s in jvm_starts])


def _result(counts: dict, added: dict[str, int], chunk_stats, seconds: float) -> StageResult:
    kept = sum(n for (status, _), n in counts.items() if status == "kept")
    duplicates = sum(n for (status, _), n in counts.items() if status == "duplicate")
    near = counts.get(("duplicate", "near_duplicate"), 0)  # MinHash near-duplicates (prepare_web)
    rejected = {reason: n for (status, reason), n in counts.items() if status == "rejected"}
    rows_in = kept + duplicates + sum(rejected.values())
    result = StageResult(
        stage=STAGE,
        rows_in=rows_in,
        rows_out=kept,
        rejected={
            **rejected,
            **({"duplicate_exact": duplicates - near} if duplicates - near else {}),
            **({"duplicate_near": near} if near else {}),
        },
        tables=added,
        seconds=seconds,
        metrics={
            "documents_kept": kept,
            "duplicates_exact": duplicates - near,
            "duplicates_near": near,
            "dedup_rate": round(duplicates / rows_in, 6) if rows_in else 0.0,
            "chunks": int(chunk_stats["n"] or 0),
            "chunk_tokens_avg": float(chunk_stats["avg_tokens"] or 0.0),
            "chunk_tokens_max": float(chunk_stats["max_tokens"] or 0.0),
            "chunks_per_document": round((chunk_stats["n"] or 0) / kept, 4) if kept else 0.0,
        },
    )
    result.check_accounting()
    return result
