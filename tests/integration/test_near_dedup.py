"""Near-dedup in Spark (fi_spark.dedup.near_dedup / components): literal expected clusters, identical
on Sail and classic Spark and across partition counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from fi_spark.config import NearDedupConfig
from fi_spark.dedup.components import ComponentsDidNotConverge, connected_components, parquet_checkpoint
from fi_spark.dedup.minhash import estimated_jaccard, jaccard
from fi_spark.dedup.near_dedup import hasher_for, near_dedup


def _text(k: int, n: int = 120, edits: dict[int, str] | None = None, extra: str = "") -> str:
    words = [f"word{k}x{i}" for i in range(n)]
    for pos, word in (edits or {}).items():
        words[pos] = word
    return " ".join(words) + extra


DOCS = [
    ("a0", _text(1)),
    ("a1", _text(1, edits={50: "changed"})),
    ("a2", _text(1, edits={90: "other"}, extra=" and a longer ending here")),
    ("b0", _text(2, edits={10: "b"})),
    ("b1", _text(2, edits={10: "b"}, extra=" plus three words")),
    ("c0", _text(3)),
    ("c1", _text(3, edits={i: f"new{i}" for i in range(0, 120, 2)})),  # every other word replaced: J << 0.8
    ("s0", "Red apple pie"),
    ("s1", "red apple, PIE!"),
    ("s2", "green apple pie"),
    ("e0", ""),
]
CFG = NearDedupConfig(enabled=True, threshold=0.8, verify="signature")  # estimated similarity: literal below


@pytest.fixture(autouse=True)
def _connect_flag(request):
    """Point pyspark's column functions at the engine under test.

    Both engines live in one test process; pyspark picks Spark Connect or classic Column objects by the
    SPARK_CONNECT_MODE_ENABLED flag, which starting the classic engine clears.
    """
    engine = request.getfixturevalue("any_engine") if "any_engine" in request.fixturenames else None
    before = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    if engine is not None and engine.caps.spark_context:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    else:
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    yield
    if before is None:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    else:
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = before


def _expected_clusters(cfg: NearDedupConfig, groups: dict[str, list[str]]) -> list[Row]:
    """Literal rows, with each member's similarity computed by the pure MinHasher (no Spark)."""
    texts = dict(DOCS)
    hasher = hasher_for(cfg)
    rows = []
    for survivor, members in groups.items():
        cluster = min(members)
        for doc in members:
            sim = (
                1.0
                if doc == survivor
                else estimated_jaccard(hasher.signature(texts[doc]), hasher.signature(texts[survivor]))
            )
            rows.append(Row(cluster_id=cluster, doc_id=doc, kept=doc == survivor, similarity=sim))
    return rows


def _run(spark, tmp_path: Path, cfg: NearDedupConfig = CFG, partitions: int = 2, stored=None):
    docs = spark.createDataFrame(DOCS, "doc_id string, text string").repartition(partitions)
    return near_dedup(docs, cfg, parquet_checkpoint(spark, str(tmp_path / "work")), stored=stored)


def test_clusters_duplicates_and_kept_documents_on_both_engines(any_engine, tmp_path):
    """The same literal clusters on Sail and classic Spark; short texts cluster only with the same tokens."""
    spark = any_engine.spark
    result = _run(spark, tmp_path)
    expected = _expected_clusters(CFG, {"a0": ["a0", "a1", "a2"], "b0": ["b0", "b1"], "s0": ["s0", "s1"]})
    assertDataFrameEqual(result.clusters, expected, rtol=1e-9)
    assertDataFrameEqual(
        result.duplicates.select("doc_id", "kept_id", "method"),
        [
            Row(doc_id=d, kept_id=k, method="minhash")
            for d, k in [("a1", "a0"), ("a2", "a0"), ("b1", "b0"), ("s1", "s0")]
        ],
    )
    assert sorted(r.doc_id for r in result.kept.collect()) == ["a0", "b0", "c0", "c1", "e0", "s0", "s2"]
    statuses = {r.doc_id: r.status for r in result.signatures.collect()}
    assert statuses["e0"] == "empty" and statuses["s0"] == "short" and statuses["a0"] == "ok"
    assert (result.bands, result.rows) == (14, 8)


def test_results_do_not_depend_on_partitioning(spark, tmp_path):
    one = _run(spark, tmp_path / "p1", partitions=1)
    seven = _run(spark, tmp_path / "p7", partitions=7)
    assertDataFrameEqual(one.clusters, seven.clusters)
    assertDataFrameEqual(one.duplicates, seven.duplicates)


@pytest.mark.parametrize(
    ("survivor", "a_group_survivor"),
    [("smallest_id", "a0"), ("longest", "a2")],
)
def test_survivor_rules(spark, tmp_path, survivor, a_group_survivor):
    cfg = NearDedupConfig(enabled=True, survivor=survivor)
    kept = {r.doc_id for r in _run(spark, tmp_path, cfg).clusters.filter("kept").collect()}
    assert a_group_survivor in kept and len(kept) == 3


def test_best_quality_survivor_prefers_prose(spark, tmp_path):
    """survivor=best_quality keeps the copy whose lines end in punctuation (ties -> smallest id)."""
    body = " ".join(f"sentence{i} goes here" for i in range(60))
    docs = spark.createDataFrame(
        [("q0", body + " and ends"), ("q1", body + " and ends.")], "doc_id string, text string"
    )
    cfg = NearDedupConfig(enabled=True, survivor="best_quality")
    result = near_dedup(docs, cfg, parquet_checkpoint(spark, str(tmp_path / "w")))
    assert [(r.doc_id, r.kept_id) for r in result.duplicates.collect()] == [("q0", "q1")]


def test_exact_verification_and_no_verification_agree_here(spark, tmp_path):
    for verify in ("exact", "none"):
        cfg = NearDedupConfig(enabled=True, verify=verify)
        dups = sorted(r.doc_id for r in _run(spark, tmp_path / verify, cfg).duplicates.collect())
        assert dups == ["a1", "a2", "b1", "s1"], verify


def test_exact_verification_reports_exact_similarity(spark, tmp_path):
    """With verify='exact' (the default) dup_clusters.similarity is the exact shingle Jaccard to the survivor."""
    cfg = NearDedupConfig(enabled=True)
    texts, hasher = dict(DOCS), hasher_for(cfg)
    got = {r.doc_id: r.similarity for r in _run(spark, tmp_path, cfg).clusters.collect()}
    survivor = {"a1": "a0", "a2": "a0", "b1": "b0", "s1": "s0"}
    for doc, kept in survivor.items():
        assert got[doc] == jaccard(hasher.shingle_ids(texts[doc]), hasher.shingle_ids(texts[kept]))
    assert got["a0"] == got["b0"] == got["s0"] == 1.0


def test_documents_stored_by_earlier_runs_always_survive(spark, tmp_path):
    """A new near-copy of a stored document is its duplicate, even when the new one has the smaller id."""
    stored = spark.createDataFrame([("zz-stored", _text(1))], "doc_id string, text string")
    result = _run(spark, tmp_path, stored=stored)
    dups = {r.doc_id: r.kept_id for r in result.duplicates.collect()}
    assert dups["a0"] == "zz-stored" and dups["a1"] == "zz-stored"
    assert "zz-stored" not in {r.doc_id for r in result.clusters.collect()}


def test_connected_components_on_a_long_chain(spark, tmp_path):
    """A 64-node path and a separate pair: smallest id per component, in few rounds thanks to pointer jumping."""
    names = [f"n{i:03d}" for i in range(64)]
    edges = [(names[i + 1], names[i]) for i in range(63)] + [("x2", "x1")]
    df = spark.createDataFrame(edges, "src string, dst string")
    labels, rounds = connected_components(df, parquet_checkpoint(spark, str(tmp_path / "cc")))
    got = {r.node: r.component for r in labels.collect()}
    assert got == {**{n: "n000" for n in names}, "x1": "x1", "x2": "x1"}
    assert rounds <= 10
    with pytest.raises(ComponentsDidNotConverge, match="max_iterations"):
        connected_components(df, parquet_checkpoint(spark, str(tmp_path / "cc2")), max_iterations=2)


def test_connected_components_match_union_find_on_a_random_graph(spark, tmp_path):
    """400 nodes, 300 random edges: the Spark labels equal a plain union-find's smallest member per component."""
    import random

    rng = random.Random(11)
    nodes = [f"v{i:04d}" for i in range(400)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(300)]
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    in_edges = {n for a, b in edges if a != b for n in (a, b)}
    expected = {n: min(m for m in in_edges if find(m) == find(n)) for n in in_edges}
    df = spark.createDataFrame(edges, "src string, dst string").repartition(5)
    labels, _ = connected_components(df, parquet_checkpoint(spark, str(tmp_path / "cc")))
    assert {r.node: r.component for r in labels.collect()} == expected
