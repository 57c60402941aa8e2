"""The source text a pair is built from (fi_spark.stages.sources.attach_source_text), on each engine."""

from __future__ import annotations

from pyspark.sql import functions as F

from fi_spark.schemas import CHUNKS, DOCUMENTS
from fi_spark.stages.sources import attach_source_text

TEXT = "Paris is the capital of France. It lies on the Seine."


def test_source_text_is_the_chunk_the_span_or_the_document(any_engine, make_ctx):
    """Chunk text when the pair names a chunk, else the document's [char_start, char_end) span, else all of it."""
    ctx = make_ctx(any_engine)
    spark = ctx.spark
    ctx.store.write(
        spark.createDataFrame([("d1", "s", None, TEXT, "h", len(TEXT), 11, {}, "f")], DOCUMENTS.schema), DOCUMENTS
    )
    ctx.store.write(spark.createDataFrame([("c1", "d1", 1, 32, 53, TEXT[32:], 6)], CHUNKS.schema), CHUNKS)
    pairs = spark.createDataFrame(
        [("by-chunk", "d1", "c1", None, None), ("by-span", "d1", None, 9, 30), ("whole", "d1", None, None, None)],
        "pair_id string, doc_id string, chunk_id string, char_start int, char_end int",
    )
    rows = attach_source_text(ctx, pairs).select("pair_id", "source_text", "char_start", "char_end").orderBy("pair_id")
    assert [tuple(r) for r in rows.collect()] == [
        ("by-chunk", "It lies on the Seine.", 32, 53),
        ("by-span", "the capital of France", 9, 30),
        ("whole", TEXT, 0, len(TEXT)),
    ]
    assert rows.where(F.col("source_text").isNull()).count() == 0


WORDS = "word " * 20  # one 100-character "sentence" without an end


def test_document_source_is_cut_at_a_sentence_and_the_cut_recorded(any_engine, make_ctx):
    """instantiate.source=document: the document from its start, cut after the last sentence within 40 characters
    (a pair's chunk is not used), the cut in char_end; a stored span wins (the judge); a sentence-less text is cut
    at a space; a missing document leaves source_text null."""
    ctx = make_ctx(any_engine)
    spark = ctx.spark
    docs = [("d1", "s", None, TEXT, "h1", len(TEXT), 11, {}, "f"), ("d2", "s", None, WORDS, "h2", 100, 20, {}, "f"),
            ("d3", "s", None, "Short one.", "h3", 10, 2, {}, "f")]  # fmt: skip
    ctx.store.write(spark.createDataFrame(docs, DOCUMENTS.schema), DOCUMENTS)
    ctx.store.write(spark.createDataFrame([("c1", "d1", 1, 32, 53, TEXT[32:], 6)], CHUNKS.schema), CHUNKS)
    pairs = spark.createDataFrame(
        [("a-chunk", "d1", "c1", None, None), ("b-stored", "d1", "c1", 0, 53), ("c-words", "d2", None, None, None),
         ("d-short", "d3", None, None, None), ("e-gone", "d9", None, None, None)],
        "pair_id string, doc_id string, chunk_id string, char_start int, char_end int",
    )  # fmt: skip
    rows = attach_source_text(ctx, pairs, document_chars=40).select("pair_id", "source_text", "char_start", "char_end")
    assert [tuple(r) for r in rows.orderBy("pair_id").collect()] == [
        ("a-chunk", "Paris is the capital of France.", 0, 31),
        ("b-stored", TEXT, 0, 53),
        ("c-words", "word word word word word word word word", 0, 39),
        ("d-short", "Short one.", 0, 10),
        ("e-gone", None, None, None),
    ]
