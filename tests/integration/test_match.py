"""build_index + match on both engines: per-template and per-document caps, regions, rejects, re-runs.

The end-to-end test uses the real MiniLM encoder and FAISS on hand-written documents whose topics
are unambiguous, so the expected template of each document is known.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from fi_spark.engine import Engine
from fi_spark.index import build_index
from fi_spark.match import match
from fi_spark.match.candidates import PlanRules
from fi_spark.match.match import select_matches
from fi_spark.schemas import CHUNKS, DOCUMENTS, MATCH_REJECTS, MATCHES, TEMPLATE_VECTORS, TEMPLATES
from fi_spark.stages.base import StageContext

CANDIDATE_COLS = "doc_id string, template_id string, score float, n_slots int, template_tokens int, doc_tokens int"
USAGE_COLS = "template_id string, used long"


def test_template_cap_then_document_cap(any_engine: Engine) -> None:
    """t1 may serve 2 documents (1 already used by an earlier run): d1 keeps it, d2/d3 fall back to t2/t3."""
    spark = any_engine.spark
    candidates = spark.createDataFrame(
        [
            ("d1", "t1", 0.9, 1, 5, 100), ("d1", "t2", 0.5, 1, 5, 100),
            ("d2", "t1", 0.8, 1, 5, 100), ("d2", "t2", 0.7, 1, 5, 100), ("d2", "t3", 0.6, 1, 5, 100),
            ("d3", "t1", 0.7, 1, 5, 100), ("d3", "t3", 0.4, 1, 5, 100),
            ("d4", None, 0.1, 0, 0, 100),
        ],
        CANDIDATE_COLS,
    )  # fmt: skip
    usage = spark.createDataFrame([("t1", 1)], USAGE_COLS)
    out = select_matches(candidates, usage, cap=2, rules=PlanRules(max_per_doc=1)).select(
        "doc_id", "template_id", "rank"
    )
    expected = [Row(doc_id="d1", template_id="t1", rank=1), Row(doc_id="d2", template_id="t2", rank=1),
                Row(doc_id="d3", template_id="t3", rank=1)]  # fmt: skip
    assertDataFrameEqual(out, expected)


def test_no_cap_keeps_best_per_document(any_engine: Engine) -> None:
    """Without a template cap or budget, each document keeps its top max_per_doc templates, ranked by score."""
    spark = any_engine.spark
    candidates = spark.createDataFrame(
        [("d1", "t1", 0.9, 1, 5, 10), ("d1", "t2", 0.5, 1, 5, 10), ("d1", "t3", 0.7, 1, 5, 10)], CANDIDATE_COLS
    )
    out = select_matches(candidates, spark.createDataFrame([], USAGE_COLS), cap=None, rules=PlanRules(max_per_doc=2))
    assertDataFrameEqual(
        out.select("template_id", "rank"), [Row(template_id="t1", rank=1), Row(template_id="t3", rank=2)]
    )


def test_token_budget_before_instantiation(any_engine: Engine) -> None:
    """Budget = the document's 100 tokens, each pair = template tokens + 40: d1 plans t1 (60) and t3 (40),
    skipping t2 (50) that would overflow; d2 (50 tokens) fits none; extra columns pass through."""
    spark = any_engine.spark
    candidates = spark.createDataFrame(
        [
            ("d1", "t1", 0.9, 1, 20, 100), ("d1", "t2", 0.8, 2, 10, 100), ("d1", "t3", 0.7, 1, 0, 100),
            ("d2", "t1", 0.9, 1, 20, 50),
        ],
        CANDIDATE_COLS,
    ).withColumn("region", F.lit(3))  # fmt: skip
    rules = PlanRules(max_per_doc=3, budget_ratio=1.0, answer_tokens=40)
    out = select_matches(candidates, spark.createDataFrame([], USAGE_COLS), cap=None, rules=rules)
    assertDataFrameEqual(
        out.select("doc_id", "template_id", "est_tokens", "rank", "region"),
        [Row(doc_id="d1", template_id="t1", est_tokens=60, rank=1, region=3),
         Row(doc_id="d1", template_id="t3", est_tokens=40, rank=2, region=3)],
    )  # fmt: skip


TEMPLATES_ROWS = [
    ("t-bake", "How long should I bake <fi>a baked good</fi>?",
     "A baking recipe that explains how to bake a cake or bread in the oven, with flour, butter, sugar and eggs."),
    ("t-football", "Who won <fi>a football match</fi>?",
     "A sports news report about a football match: the teams, the goals scored and the final result."),
    ("t-tax", "How do I file <fi>a tax form</fi>?",
     "A government guide explaining income tax returns, deductions and how to file taxes."),
    ("t-stars", "Why do <fi>stars</fi> shine?",
     "An astronomy article about stars, planets, galaxies and how telescopes observe the night sky."),
]  # fmt: skip

BAKE = ("Preheat the oven to 180 degrees. Mix the flour, sugar and butter, then beat in the eggs. "
        "Pour the batter into a cake tin and bake for forty minutes until golden.")  # fmt: skip
FOOTBALL = ("The home team won the football match two goals to one. The striker scored twice in the second "
            "half and the goalkeeper saved a penalty before the final whistle.")  # fmt: skip
STARS = ("Astronomers pointed the telescope at a distant galaxy. Its stars shine because nuclear fusion in "
         "their cores turns hydrogen into helium, and the planets around them reflect that light.")  # fmt: skip
NONSENSE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt."


def seed_tables(ctx: StageContext, chunk_order: Callable[[tuple], object] | None = None) -> None:
    """Templates, documents and chunks written directly, so the test controls every chunk (and, with
    `chunk_order`, the order the chunks are stored in)."""
    spark = ctx.spark
    templates = [(tid, text, ["slot"], 1, desc, [], "test", None) for tid, text, desc in TEMPLATES_ROWS]
    ctx.store.write(spark.createDataFrame(templates, TEMPLATES.schema), TEMPLATES)
    docs = {
        "bake-1": [BAKE], "bake-2": [BAKE.replace("cake", "loaf of bread")], "bake-3": [BAKE.replace("forty", "fifty")],
        "football": [FOOTBALL], "mixed": [BAKE, BAKE, FOOTBALL, FOOTBALL], "nonsense": [NONSENSE], "empty": [],
    }  # fmt: skip
    doc_rows, chunk_rows = [], []
    for doc_id, parts in docs.items():
        text = "\n\n".join(parts) or "(no text)"
        doc_rows.append((doc_id, None, None, text, "h-" + doc_id, len(text), len(text.split()), None, None))
        pos = 0
        for i, part in enumerate(parts):
            chunk_rows.append((f"{doc_id}#{i}", doc_id, i, pos, pos + len(part), part, len(part.split())))
            pos += len(part) + 2
    if chunk_order is not None:
        chunk_rows.sort(key=chunk_order)
    ctx.store.write(spark.createDataFrame(doc_rows, DOCUMENTS.schema), DOCUMENTS)
    ctx.store.write(spark.createDataFrame(chunk_rows, CHUNKS.schema), CHUNKS)


@pytest.mark.parametrize("engine_name", ["embedded", "local"])
def test_build_index_and_match(
    engine_name: str, request: pytest.FixtureRequest, make_ctx: Callable[..., StageContext]
) -> None:
    """Topical documents get their template; the per-template cap spreads bake docs; regions find both
    topics of the mixed document; nonsense and chunk-less documents are rejected; re-runs add nothing."""
    engine: Engine = request.getfixturevalue(f"{engine_name}_engine")
    ctx = make_ctx(engine, [
        "match.max_per_template=3", "match.max_per_doc=2", "match.min_score=0.3", "match.top_k=4",
        "embed.regions=2", "embed.sigma=0.15", "embed.alpha=0.8", "match.partitions=2", "match.token_budget=null",
    ])  # fmt: skip
    seed_tables(ctx)

    built = build_index.run(ctx)
    assert built.rows_out == 4 and built.metrics["vectors_embedded"] == 4 and built.metrics["recall_at_10"] == 1.0

    result = match.run(ctx)
    assert result.rows_in == 7 and result.rows_out == 4 and result.accounting_ok
    assert result.rejected == {"no_chunks": 1, "below_min_score": 1, "capped_out": 1}
    rejects = {r.doc_id: r.reason for r in ctx.store.read(MATCH_REJECTS).collect()}
    # four documents want t-bake, the cap is 3: the weakest (bake-2) has no other template above min_score
    assert rejects == {"empty": "no_chunks", "nonsense": "below_min_score", "bake-2": "capped_out"}

    rows = ctx.store.read(MATCHES).collect()
    by_doc: dict[str, list[Row]] = {}
    for r in rows:
        by_doc.setdefault(r.doc_id, []).append(r)
    best = {d: min(rs, key=lambda r: r.rank).template_id for d, rs in by_doc.items()}
    assert best["football"] == "t-football"
    assert {r.template_id for r in by_doc["mixed"]} >= {"t-bake", "t-football"}
    mixed_regions = {r.template_id: r for r in by_doc["mixed"]}
    assert mixed_regions["t-bake"].chunk_id in ("mixed#0", "mixed#1")  # the region over the baking half
    assert mixed_regions["t-football"].chunk_id in ("mixed#2", "mixed#3")
    uses = [r.template_id for r in rows]
    assert uses.count("t-bake") == 3
    assert all(len(rs) <= 2 for rs in by_doc.values())
    assert sorted(r.rank for r in by_doc["mixed"]) == [1, 2]
    assert result.metrics["distinct_templates_used"] >= 2 and 0.0 <= result.metrics["template_gini"] <= 1.0

    assert build_index.run(ctx).metrics["index_reused"] == 1.0
    again = match.run(ctx)
    assert again.rows_in == 0 and ctx.store.count(MATCHES) == len(rows)


def test_match_pools_the_tokens_of_whole_documents(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext]
) -> None:
    """embed.pooling_unit=tokens with 32-token windows: the mixed document (~120 tokens, baking then football)
    finds both templates, so its regions reach past the first window; vectors name no chunk; descriptions are
    token-pooled too (template_vectors.model records it)."""
    ctx = make_ctx(embedded_engine, [
        "embed.pooling_unit=tokens", "embed.max_seq_length=32", "embed.window_overlap=8", "embed.regions=4",
        "embed.sigma=0.1", "embed.alpha=1.0", "match.min_score=0.3", "match.top_k=4", "match.max_per_doc=2",
        "match.max_per_template=null", "match.token_budget=null",
    ])  # fmt: skip
    seed_tables(ctx)
    build_index.run(ctx)
    assert {r.model for r in ctx.store.read(TEMPLATE_VECTORS).collect()} == {"minilm+tokens"}
    result = match.run(ctx)
    assert result.accounting_ok
    by_doc: dict[str, set[str]] = {}
    for r in ctx.store.read(MATCHES).collect():
        by_doc.setdefault(r.doc_id, set()).add(r.template_id)
        assert r.chunk_id is None and r.char_start is None
    assert by_doc["mixed"] == {"t-bake", "t-football"}
    assert by_doc["football"] == {"t-football"} and "t-bake" in by_doc["bake-1"]
    assert {r.doc_id: r.reason for r in ctx.store.read(MATCH_REJECTS).collect()}["nonsense"] == "below_min_score"


def test_match_pools_whole_documents_when_the_engine_drops_the_sort(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext]
) -> None:
    """Sail drops match's sortWithinPartitions before mapInPandas, so chunks reach a partition in the order they
    were stored. Stored interleaved (each document's chunks apart, last chunk first), every document is still
    pooled once from all its chunks: the mixed document finds both its topics, accounting holds."""
    ctx = make_ctx(embedded_engine, [
        "match.max_per_template=null", "match.max_per_doc=2", "match.min_score=0.3", "match.top_k=4",
        "embed.regions=2", "embed.sigma=0.15", "embed.alpha=0.8", "match.partitions=1", "match.token_budget=null",
    ])  # fmt: skip
    seed_tables(ctx, chunk_order=lambda row: (-row[2], row[1]))  # mixed#3, mixed#2, mixed#1, then the others
    stored = [r.doc_id for r in ctx.store.read(CHUNKS).collect()]
    assert stored[:4] == ["mixed", "mixed", "mixed", "bake-1"] and stored[-1] == "nonsense"
    build_index.run(ctx)
    result = match.run(ctx)
    assert result.accounting_ok and result.rows_in == 7
    by_doc: dict[str, set[str]] = {}
    for r in ctx.store.read(MATCHES).collect():
        by_doc.setdefault(r.doc_id, set()).add(r.template_id)
    assert by_doc["mixed"] == {"t-bake", "t-football"} and by_doc["football"] == {"t-football"}
