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

With `instantiate.source=document` (the paper's recipe: the instantiator reads the document, not the
512-token chunk the match came from) every pair's source is the document from its start, up to
`instantiate.max_source_chars` (the model's context, in characters), cut after the last whole sentence
that fits (`sentence_cut`). The cut is recorded in the span: char_start = 0 and char_end = where the text
ends, short of the document's length when it was cut. Matching stays per region (the pair still names its
chunk); the judge, given the same setting, takes the stored span, so grounding and judge read the exact
characters the instantiator read even if max_source_chars changed in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fi_spark.schemas import CHUNKS, DOCUMENTS
from fi_spark.stages.base import StageContext
from fi_spark.text.chunking import sentence_starts

SEP = "\u001f"  # unit separator: cannot occur in ids, so concatenation is unambiguous


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


def sentence_cut(text: str, max_chars: int) -> int:
    """Where `text` ends when shown up to `max_chars`: all of it when it fits, else after the last sentence
    that ends within the limit (trailing spaces dropped); a first sentence longer than the limit is cut at
    its last space, a text without one at the limit itself."""
    if len(text) <= max_chars:
        return len(text)
    starts = [s for s in sentence_starts(text) if 0 < s <= max_chars]
    if starts:
        return len(text[: starts[-1]].rstrip())
    space = text.rfind(" ", 0, max_chars + 1)
    return space if space > 0 else max_chars


def document_spans(docs: DataFrame, max_chars: int) -> DataFrame:
    """(doc_id, _cut): where each document's shown text ends (`sentence_cut`); computed in Python only for
    documents longer than `max_chars`, the others end at their length."""
    long = docs.where(F.length("_doc_text") > max_chars).select("doc_id", "_doc_text")
    cuts = long.mapInPandas(partial(_cut_batches, max_chars), "doc_id string, _cut int")
    short = docs.where(F.length("_doc_text") <= max_chars).select("doc_id", F.length("_doc_text").alias("_cut"))
    return short.unionByName(cuts)


def _cut_batches(max_chars: int, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for b in batches:
        cuts = [sentence_cut(str(t), max_chars) for t in b["_doc_text"]]
        yield pd.DataFrame({"doc_id": b["doc_id"], "_cut": pd.Series(cuts, dtype="int32")})


def source_chars(ctx: StageContext) -> int | None:
    """The `document_chars` of `attach_source_text` for this run: None unless instantiate.source=document."""
    cfg = ctx.config.instantiate
    return cfg.max_source_chars if cfg.source == "document" else None


def attach_source_text(ctx: StageContext, pairs: DataFrame, document_chars: int | None = None) -> DataFrame:
    """`pairs` (doc_id, chunk_id[, char_start, char_end]) plus `source_text` and the span it is; rows whose
    document is gone get a null source_text (the caller turns them into rejects).

    `document_chars` set (instantiate.source=document): the source is the document from its start, up to
    that many characters cut at a sentence end, or the stored span [char_start, char_end) when the row has
    one (the judge reading a pair); the chunk is not used.
    """
    docs = ctx.store.read(DOCUMENTS).select("doc_id", F.col("text").alias("_doc_text"))
    if document_chars is not None:
        return _attach_document(pairs, docs, document_chars)
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


def _attach_document(pairs: DataFrame, docs: DataFrame, max_chars: int) -> DataFrame:
    if "char_start" not in pairs.columns:
        pairs = pairs.withColumn("char_start", F.lit(None).cast("int")).withColumn("char_end", F.lit(None).cast("int"))
    needed = docs.join(pairs.select("doc_id").distinct(), "doc_id", "left_semi")
    joined = pairs.join(docs, "doc_id", "left").join(document_spans(needed, max_chars), "doc_id", "left")
    stored = F.col("char_start").isNotNull() & F.col("char_end").isNotNull()
    start = F.when(stored, F.col("char_start")).otherwise(F.lit(0))
    end = F.when(stored, F.col("char_end")).otherwise(F.col("_cut"))
    found = F.col("_doc_text").isNotNull()
    return (
        joined.withColumn("source_text", F.when(found, F.col("_doc_text").substr(start + 1, end - start)))
        .withColumn("char_start", F.when(found, start).otherwise(F.col("char_start")).cast("int"))
        .withColumn("char_end", F.when(found, end).otherwise(F.col("char_end")).cast("int"))
        .drop("_doc_text", "_cut")
    )
