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
