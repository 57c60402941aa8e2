"""Inputs shared by the pair-stage integration tests: four documents, three templates, all twelve matches.

The `templates` and `matches` tables are written here directly (their own stages are tested elsewhere),
with the columns the pair stages read.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from fi_spark.schemas import CHUNKS, TableSpec
from fi_spark.stages import prepare_corpus
from fi_spark.stages.base import StageContext

DOCS = [
    (
        "wiki-1",
        (
            "Agriculture is the cultivation of land and breeding of animals and plants to provide food. It was "
            "the key development in the rise of sedentary human civilization, creating food surpluses in cities."
        ),
    ),
    (
        "wiki-2",
        (
            "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
            "after the engineer Gustave Eiffel, whose company designed and built the tower between 1887 and 1889."
        ),
    ),
    (
        "news-1",
        (
            "Qantas maintenance workers will decide by secret ballot whether to accept the airline's offer of "
            "an incentive payment. Unions will advise members to reject the offer because it includes a wage freeze."
        ),
    ),
    (
        "news-2",
        (
            "The Danube is Europe's second-longest river, flowing through ten countries into the Black Sea. It "
            "has been an important trade route for centuries and links many capital cities along its banks."
        ),
    ),
]
TEMPLATES = [
    ("t-why", "Why is <fi>a topic</fi> important?", "an article explaining why something matters", "q-1"),
    ("t-what", "What is <fi>a thing</fi> known for?", "an encyclopedia entry describing a thing", "q-2"),
    ("t-broken", "KEEP_TAGS explain <fi>a subject</fi>", "any text", "q-3"),
]
TEMPLATE_SPEC = TableSpec(
    "templates",
    StructType(
        [StructField(n, StringType(), False) for n in ("template_id", "template", "compatible_document_description")]
        + [StructField("query_id", StringType(), True)]
    ),
    key=("template_id",),
)
MATCH_SPEC = TableSpec(
    "matches",
    StructType(
        [
            StructField("doc_id", StringType(), False),
            StructField("chunk_id", StringType(), True),
            StructField("template_id", StringType(), False),
            StructField("score", DoubleType(), False),
            StructField("rank", IntegerType(), False),
        ]
    ),
    key=("doc_id", "template_id"),
)


def write_inputs(ctx: StageContext, folder: Path) -> None:
    """Documents through prepare_corpus; templates and matches (every document x every template) written directly."""
    docs = folder / "documents.jsonl"
    docs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in DOCS))
    prepare_corpus.run(ctx, str(docs))
    spark = ctx.spark
    ctx.store.write(spark.createDataFrame(TEMPLATES, TEMPLATE_SPEC.schema), TEMPLATE_SPEC)
    first_chunks = ctx.store.read(CHUNKS).where(F.col("ordinal") == 0).select("doc_id", "chunk_id")
    pairs_wanted = [
        (d, t, 0.5 + i / 100, rank) for i, (d, _) in enumerate(DOCS) for rank, (t, *_) in enumerate(TEMPLATES)
    ]
    wanted = spark.createDataFrame(pairs_wanted, "doc_id string, template_id string, score double, rank int")
    ctx.store.write(wanted.join(first_chunks, "doc_id"), MATCH_SPEC)
