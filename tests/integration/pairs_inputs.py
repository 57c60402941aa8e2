"""Inputs shared by the pair-stage integration tests: four documents, three templates, all twelve matches.

The `templates` and `matches` tables are written here directly, with their real schemas (their own
stages are tested elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F

from fi_spark.ingest import prepare_corpus
from fi_spark.schemas import CHUNKS, MATCHES
from fi_spark.schemas import TEMPLATES as TEMPLATES_SPEC
from fi_spark.stages.base import StageContext
from fi_spark.text.tags import parse_template

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


def write_inputs(ctx: StageContext, folder: Path, n_docs: int = len(DOCS)) -> None:
    """Documents through prepare_corpus; templates and matches (every document x every template) written directly."""
    docs = folder / "documents.jsonl"
    docs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in DOCS[:n_docs]))
    prepare_corpus.run(ctx, str(docs))
    spark = ctx.spark
    templates = [
        (tid, text, [s.description for s in parse_template(text).slots], len(parse_template(text).slots), desc, [qid],
         "test", None)
        for tid, text, desc, qid in TEMPLATES
    ]  # fmt: skip
    ctx.store.write(spark.createDataFrame(templates, TEMPLATES_SPEC.schema), TEMPLATES_SPEC)
    first_chunks = (
        ctx.store.read(CHUNKS).where(F.col("ordinal") == 0).select("doc_id", "chunk_id", "char_start", "char_end")
    )
    pairs_wanted = [
        (doc, template, 0.5 + i / 100, rank + 1)
        for i, (doc, _) in enumerate(DOCS[:n_docs])
        for rank, (template, *_) in enumerate(TEMPLATES)
    ]
    wanted = spark.createDataFrame(pairs_wanted, "doc_id string, template_id string, score double, rank int")
    matches = wanted.join(first_chunks, "doc_id").select(
        "*", F.lit(0).alias("region"), F.lit(0.5).alias("centre"), F.lit("test-index").alias("index_version")
    )
    ctx.store.write(matches, MATCHES)
