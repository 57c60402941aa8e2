"""Shared reads of the pair stages: matches as candidate pairs, and the source text each pair is built from.

A candidate pair is one (document, chunk, template) match; its id is sha256 of those three ids, so the
same match always makes the same pair and a re-run skips pairs already decided. The source text is the
text the instantiator sees and the judge checks against:

1. the matched chunk's text when the match names a `chunk_id` (a chunk or the chunk nearest a region);
2. else the document's text between `char_start` and `char_end` when the match carries such a span;
3. else the document's text (the prompts cut it to `max_source_chars`).

`attach_source_text` also sets (char_start, char_end) to the span that text is (the chunk's, the match's,
or the whole document), and `pairs` stores it: the judge rebuilds exactly the same text from the pair's
own (doc_id, chunk_id, char_start, char_end), so both stages see one source without reading matches.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from fi_spark.schemas import ALL_TABLES, CHUNKS, DOCUMENTS, TableSpec
from fi_spark.stages.base import StageContext

SEP = "\u001f"  # unit separator: cannot occur in ids, so concatenation is unambiguous


def named_table(ctx: StageContext, name: str) -> DataFrame | None:
    """A table by name (also one whose spec another module has not registered yet), or None if absent."""
    spec = ALL_TABLES.get(name) or TableSpec(name, StructType([]), ())
    if not ctx.store.exists(spec):
        return None
    return ctx.store.reader(spec)


def pair_id_column(doc: str = "doc_id", chunk: str = "chunk_id", template: str = "template_id") -> F.Column:
    return F.sha2(F.concat_ws(SEP, F.col(doc), F.coalesce(F.col(chunk), F.lit("")), F.col(template)), 256)


def candidate_pairs(matches: DataFrame) -> DataFrame:
    """One row per pair id from `matches`: pair_id, doc_id, chunk_id, template_id, match_score, match_rank,
    char_start, char_end. When several matches make one pair (a template matching the global vector and a
    region of the same chunk), the best-scoring one is kept; the others are not pairs of their own."""
    cols = set(matches.columns)
    missing = {"doc_id", "template_id"} - cols
    if missing:
        raise ValueError(f"input table matches lacks columns {sorted(missing)}; has {sorted(cols)}")

    def opt(name: str, *aliases: str, dtype: str = "string") -> F.Column:
        for candidate in (name, *aliases):
            if candidate in cols:
                return F.col(candidate).cast(dtype)
        return F.lit(None).cast(dtype)

    rows = matches.select(
        F.col("doc_id").cast("string").alias("doc_id"),
        opt("chunk_id").alias("chunk_id"),
        F.col("template_id").cast("string").alias("template_id"),
        opt("score", "match_score", dtype="double").alias("match_score"),
        opt("rank", "match_rank", dtype="int").alias("match_rank"),
        opt("char_start", dtype="int").alias("char_start"),
        opt("char_end", dtype="int").alias("char_end"),
    ).withColumn("pair_id", pair_id_column())
    best = Window.partitionBy("pair_id").orderBy(F.desc_nulls_last("match_score"), F.asc_nulls_last("match_rank"))
    return rows.withColumn("_n", F.row_number().over(best)).where(F.col("_n") == 1).drop("_n")


def attach_source_text(ctx: StageContext, pairs: DataFrame) -> DataFrame:
    """`pairs` (doc_id, chunk_id[, char_start, char_end]) plus `source_text` and the span it is; rows whose
    document is gone get a null source_text (the caller turns them into rejects)."""
    docs = ctx.store.read(DOCUMENTS).select("doc_id", F.col("text").alias("_doc_text"))
    chunks = ctx.store.read(CHUNKS).select(
        "chunk_id", F.col("text").alias("_chunk_text"), F.col("char_start").alias("_c0"), F.col("char_end").alias("_c1")
    )
    if "char_start" not in pairs.columns:  # e.g. pairs written before they stored their span
        pairs = pairs.withColumn("char_start", F.lit(None).cast("int")).withColumn("char_end", F.lit(None).cast("int"))
    joined = pairs.join(docs, "doc_id", "left").join(chunks, "chunk_id", "left")
    has_chunk = F.col("_chunk_text").isNotNull()
    has_span = F.col("char_start").isNotNull() & F.col("char_end").isNotNull()
    # Column.substr, not F.substring: F.substring takes Column positions only from Spark 4.0 on
    span = F.col("_doc_text").substr(F.col("char_start") + 1, F.col("char_end") - F.col("char_start"))
    source = F.when(has_chunk, F.col("_chunk_text")).when(has_span, span).otherwise(F.col("_doc_text"))
    start = F.when(has_chunk, F.col("_c0")).when(has_span, F.col("char_start")).otherwise(F.lit(0))
    end = F.when(has_chunk, F.col("_c1")).when(has_span, F.col("char_end")).otherwise(F.length("_doc_text"))
    found = F.col("_doc_text").isNotNull()
    return (
        joined.withColumn("source_text", F.when(found, source))
        .withColumn("char_start", F.when(found, start).otherwise(F.col("char_start")).cast("int"))
        .withColumn("char_end", F.when(found, end).otherwise(F.col("char_end")).cast("int"))
        .drop("_doc_text", "_chunk_text", "_c0", "_c1")
    )
