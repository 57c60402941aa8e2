"""ingest_queries on both engines: formats, reject reasons, exact duplicates, accounting, idempotent re-run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fi_spark.engine import Engine
from fi_spark.ingest import ingest_queries
from fi_spark.schemas import QUERIES, QUERY_REJECTS
from fi_spark.stages.base import StageContext


def write_inputs(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        json.dumps({"id": "a", "text": "What is the capital of Peru?", "source": "s1"}),
        json.dumps({"id": "b", "text": "  What is the   capital of Peru?  ", "source": "s2"}),  # duplicate after norm
        json.dumps({"id": "c", "text": 42}),
        json.dumps({"id": "d"}),
        json.dumps({"id": "e", "text": "??"}),
        json.dumps({"id": "f", "text": "1234 5678"}),
        json.dumps({"id": "g", "text": "x" * 5000}),
        "{not json",
        "",
    ]
    (folder / "q.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "q.csv").write_text('id,text,source\nh,"How do I bake, say, bread?",csv\n', encoding="utf-8")
    return folder


def test_ingest_queries_reasons_and_rerun(
    any_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """Each bad record gets its reason, duplicates collapse, JSONL+CSV both load, a re-run adds nothing."""
    inputs = write_inputs(tmp_path / "in")
    ctx = make_ctx(any_engine)
    result = ingest_queries.run(ctx, str(inputs / "q.jsonl"))
    assert result.rows_in == 8 and result.rows_out == 1
    assert result.rejected == {
        "duplicate": 1, "not_text": 1, "missing_text": 1, "too_short": 1, "no_letters": 1, "too_long": 1,
        "malformed_json": 1,
    }  # fmt: skip
    kept = ctx.store.read(QUERIES).collect()
    assert [(r.text, r.source_id, r.source) for r in kept] == [("What is the capital of Peru?", "a", "s1")]
    dup = ctx.store.read(QUERY_REJECTS).where("reason = 'duplicate'").collect()[0]
    assert dup.source_id == "b" and dup.query_id == kept[0].query_id

    again = ingest_queries.run(ctx, str(inputs / "q.jsonl"))
    assert again.tables == {"queries": 0, "query_rejects": 0} and again.rows_out == 1

    csv = ingest_queries.run(ctx, str(inputs / "q.csv"))
    assert csv.rows_out == 1 and csv.tables["queries"] == 1
    assert ctx.store.read(QUERIES).where("source_id = 'h'").collect()[0].text == "How do I bake, say, bread?"


def test_ingest_sample_queries(embedded_engine: Engine, make_ctx: Callable[..., StageContext]) -> None:
    """The bundled real queries (427 Self-Instruct instructions) load with every record accounted for."""
    from fi_spark.cli import sample_path

    result = ingest_queries.run(make_ctx(embedded_engine), sample_path("queries.jsonl"))
    assert result.rows_in == 427 and result.rows_out == 426
    assert result.rejected == {"too_long": 1}  # one instruction pastes a > 4,000-character input
