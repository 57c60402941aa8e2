"""Stage tables by name (fi_spark.catalog) on both engines: external tables over the output folders, comments
from fi_spark.schemas, the kept views with the judge threshold applied, and a stage registering what it wrote."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fi_spark.catalog import Catalog, CatalogConflictError
from fi_spark.engine import Engine
from fi_spark.run.pipeline import run_spec
from fi_spark.schemas import JUDGED, PAIRS, QUERIES
from fi_spark.stages.base import StageContext
from fi_spark.stages.registry import PipelineInputs, stage


def pair(pair_id: str, doc: str) -> dict:
    return {
        "pair_id": pair_id, "doc_id": doc, "chunk_id": None, "template_id": "t1", "instruction": f"Q {pair_id}?",
        "answer": f"A {pair_id}.", "slot_values": None, "grounding": 1.0, "answer_tokens": 2, "longest_excerpt": 2,
        "excerpt_share": 1.0, "match_score": 0.9, "match_rank": 1, "char_start": 0, "char_end": 10, "model": "gen",
        "prompt_version": "instantiate.v1", "request_id": f"r-{pair_id}",
    }  # fmt: skip


def verdict(pair_id: str, score: int | None) -> dict:
    return {
        "pair_id": pair_id, "score": score, "rationale": None, "error_reason": None if score else "judge_unparseable",
        "detail": None, "expected_score": None, "scale_min": 1, "scale_max": 5, "model": "judge-m",
        "prompt_version": "judge.v2", "request_id": f"j-{pair_id}",
    }  # fmt: skip


def write_pairs_and_verdicts(ctx: StageContext) -> None:
    """Four pairs judged 5, 4, 2 and unparseable (null score)."""
    ids = ["p1", "p2", "p3", "p4"]
    ctx.store.write(ctx.spark.createDataFrame([pair(i, "d1") for i in ids], PAIRS.schema), PAIRS)
    scores = [verdict("p1", 5), verdict("p2", 4), verdict("p3", 2), verdict("p4", None)]
    ctx.store.write(ctx.spark.createDataFrame(scores, JUDGED.schema), JUDGED)


def schema_name() -> str:
    return f"fi_test_{uuid.uuid4().hex[:8]}"  # the session catalog outlives a test: a schema of its own


def test_tables_and_kept_views_by_name(any_engine: Engine, make_ctx: Callable[..., StageContext]) -> None:
    """pairs and judged answer SQL by name with their comments; judged_kept / pairs_kept apply judge.threshold."""
    schema = schema_name()
    ctx = make_ctx(any_engine, [f"tables.schema={schema}", "judge.threshold=4"])
    write_pairs_and_verdicts(ctx)
    names = Catalog.of(ctx).register([PAIRS, JUDGED])
    assert names == [f"`{schema}`.`{t}`" for t in ("pairs", "judged", "judged_kept", "pairs_kept")]

    sql = ctx.spark.sql
    assert sql(f"SELECT count(*) AS n FROM {schema}.judged").collect()[0].n == 4
    kept = sql(f"SELECT pair_id, score, threshold FROM {schema}.judged_kept ORDER BY pair_id").collect()
    assert [tuple(r) for r in kept] == [("p1", 5, 4.0), ("p2", 4, 4.0)]
    rows = sql(f"SELECT pair_id, answer, judge_score, judge_model FROM {schema}.pairs_kept ORDER BY pair_id").collect()
    assert [tuple(r) for r in rows] == [("p1", "A p1.", 5, "judge-m"), ("p2", "A p2.", 4, "judge-m")]

    table = ctx.spark.catalog.getTable(f"{schema}.judged")
    assert table.description == JUDGED.doc and table.tableType == "EXTERNAL"
    columns = {c.name: c.description for c in ctx.spark.catalog.listColumns(f"{schema}.judged")}
    assert columns["score"] == "null when no usable verdict came back (see error_reason)"
    assert columns == dict(JUDGED.column_docs)


def test_a_stage_registers_what_it_wrote(any_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path):
    """ingest_queries through the registry: `queries` is then a catalog table holding the stage's rows."""
    schema = schema_name()
    source = tmp_path / "q.jsonl"
    lines = [json.dumps({"text": t}) for t in ("What is the capital of Peru?", "How do I bake bread at home?")]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ctx = make_ctx(any_engine, [f"tables.schema={schema}"])
    result = run_spec(stage("ingest_queries"), ctx, PipelineInputs(queries=str(source)))
    assert result.rows_out == 2
    assert ctx.spark.sql(f"SELECT count(*) AS n FROM {schema}.{QUERIES.name}").collect()[0].n == 2
    listed = {t.name for t in ctx.spark.catalog.listTables(schema)}
    assert listed == {"queries", "query_rejects"}  # no pairs or judged yet: no kept views


def test_no_schema_registers_nothing(embedded_engine: Engine, make_ctx: Callable[..., StageContext]) -> None:
    """Without tables.schema the catalog is left alone (tables by path only, as before)."""
    ctx = make_ctx(embedded_engine)
    write_pairs_and_verdicts(ctx)
    assert Catalog.of(ctx).register([PAIRS, JUDGED]) == []


def test_a_name_of_another_output_is_refused(
    local_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """The classic engine reports each table's location: a second output folder may not take over the names.
    (Sail's DESCRIBE EXTENDED has no location, so there the first registration silently stays.)"""
    schema = schema_name()
    first = make_ctx(local_engine, [f"tables.schema={schema}"], output=tmp_path / "first")
    write_pairs_and_verdicts(first)
    Catalog.of(first).register([PAIRS])
    second = make_ctx(local_engine, [f"tables.schema={schema}"], output=tmp_path / "second")
    write_pairs_and_verdicts(second)
    with pytest.raises(CatalogConflictError, match=r"catalog table `fi_test_\w+`.`pairs` points at .*first"):
        Catalog.of(second).register([PAIRS])
    assert Catalog.of(first).register([PAIRS])[0].endswith("`pairs`")  # its own output: registered again, fine


def test_managed_tables_live_in_the_catalog(
    any_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tables.managed: a stage writes managed tables by name (no <output>/tables folder), a re-run adds nothing,
    and the table comes with its comment from schemas.py (not on Sail 0.7: it refuses to alter a managed table
    whose warehouse path is relative, so the comment is missing there, with one warning line)."""
    from fi_spark.tables import TableStore

    monkeypatch.chdir(tmp_path)  # Sail puts managed tables in ./spark-warehouse
    schema = schema_name()
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"text": "What is the capital of Peru?"}) + "\n", encoding="utf-8")
    ctx = make_ctx(any_engine, [f"tables.schema={schema}", "tables.managed=true"], output=tmp_path / "out")
    ctx.store = TableStore.open(ctx.spark, ctx.output, ctx.config.tables, any_engine.caps)
    first = run_spec(stage("ingest_queries"), ctx, PipelineInputs(queries=str(source)))
    again = run_spec(stage("ingest_queries"), ctx, PipelineInputs(queries=str(source)))
    assert (first.tables, again.tables) == ({"queries": 1, "query_rejects": 0}, {"queries": 0, "query_rejects": 0})
    assert ctx.spark.sql(f"SELECT text FROM {schema}.queries").collect()[0].text == "What is the capital of Peru?"
    assert not (tmp_path / "out" / "tables").exists()
    table = ctx.spark.catalog.getTable(f"{schema}.queries")
    assert (table.tableType, table.description) == ("MANAGED", QUERIES.doc if any_engine.caps.mode == "local" else None)
