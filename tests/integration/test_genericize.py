"""genericize and import_templates against a scripted OpenAI-compatible server: validation reasons, merging,
ledger-backed re-runs, and bank import with the same rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fi_spark.engine import Engine
from fi_spark.errors import LLMFailureError
from fi_spark.export.lineage import _with_later_sources
from fi_spark.genericize import genericize, import_templates
from fi_spark.ingest import ingest_queries
from fi_spark.schemas import TEMPLATE_REJECTS, TEMPLATE_SOURCES, TEMPLATES
from fi_spark.stages.base import StageContext
from fi_spark_testkit.fault_server import FaultServer

DESC = "An encyclopedia article about a country that names its capital city and describes it."
ANSWERS: dict[str, dict[str, str]] = {
    "What is the capital of Peru?": {"template": "What is the capital of <fi>a country</fi>?"},
    "what is the capital of Chile": {"template": "What is the capital of <fi>a South American country</fi>"},
    "Tell me the history of Yugoslavia.": {"template": "Tell me the <fi>aspect</fi> of Yugoslavia."},
    "How tall is the Eiffel Tower?": {"template": "How tall is the Eiffel Tower?"},  # no slot: schema refuses
    "Write a haiku about rain.": {"template": "Write a <fi>poem form</fi> about <fi>a topic</fi>.",
                                  "compatible_document_description": "Poems about weather and rain."},
}  # fmt: skip


class GenericizeServer(FaultServer):
    """Answers genericize requests from a table keyed by the query in the last user turn."""

    def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
        out = super()._answer(chat, req, rid, bad)
        if bad:
            return out
        query = str(req["messages"][-1]["content"]).removeprefix("Query: ")
        answer = {"compatible_document_description": DESC, **ANSWERS[query]}
        out["choices"][0]["message"]["content"] = json.dumps(answer)
        return out


@pytest.fixture(scope="module")
def server():
    with GenericizeServer() as srv:
        yield srv


def test_genericize_validates_merges_and_reruns_from_the_ledger(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path, server: GenericizeServer
) -> None:
    """Peru/Chile merge into one template; Yugoslavia keeps a specific; no-slot and short-description answers are
    rejected with reasons; a second run sends no request and adds no row."""
    ctx = make_ctx(
        embedded_engine,
        [
            f"llm.endpoints=[{server.url}]",
            "llm.model=test-model",
            "llm.schema_retries=0",
            "templates.min_description_chars=40",
            "templates.sample_queries=null",
        ],
    )
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"id": str(i), "text": q}) for i, q in enumerate(ANSWERS)) + "\n")
    ingest_queries.run(ctx, str(queries))

    result = genericize.run(ctx)
    assert (result.rows_in, result.rows_out) == (5, 2)
    assert result.rejected == {"leftover_specifics": 1, "llm_schema_invalid": 1, "description_too_short": 1}
    templates = ctx.store.read(TEMPLATES).collect()
    assert len(templates) == 1
    t = templates[0]
    assert t.template == "What is the capital of <fi>a country</fi>?"  # same skeleton; the shorter text is kept
    assert t.slots == ["a country"] and t.n_slots == 1 and len(t.source_query_ids) == 2
    assert t.origin.startswith("genericize:genericize.v1+") and t.model == "test-model"
    rejects = {r.reason: r for r in ctx.store.read(TEMPLATE_REJECTS).collect()}
    assert "'Yugoslavia'" in rejects["leftover_specifics"].detail
    assert rejects["leftover_specifics"].query == "Tell me the history of Yugoslavia."
    assert result.metrics["slots_1"] == 2 and result.metrics["merged_queries"] == 1

    calls = server.snapshot()["requests"]
    again = genericize.run(ctx)
    assert again.rows_in == 0 and server.snapshot()["requests"] == calls


def test_a_query_merging_into_an_earlier_runs_template_is_recorded_and_not_pending_again(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path, server: GenericizeServer
) -> None:
    """Run 1 stores Peru's template; Chile's query arrives later and its template merges into that stored row,
    which append-only tables cannot extend: `template_sources` records it, the lineage lists both queries, and
    a third run has nothing pending (before: Chile was pending -- and counted out -- on every later run)."""
    overrides = [f"llm.endpoints=[{server.url}]", "llm.model=test-model", "templates.sample_queries=null"]
    ctx = make_ctx(embedded_engine, overrides)
    peru, chile = "What is the capital of Peru?", "what is the capital of Chile"
    for i, texts in enumerate([[peru], [peru, chile]]):
        queries = tmp_path / f"q{i}.jsonl"
        queries.write_text("".join(json.dumps({"text": q}) + "\n" for q in texts))
        ingest_queries.run(ctx, str(queries))
        result = genericize.run(ctx)
        assert (result.rows_in, result.rows_out, result.rejected) == (1, 1, {})
    assert result.tables == {"templates": 0, "template_sources": 1, "template_rejects": 0}
    (template,) = ctx.store.read(TEMPLATES).collect()
    sources = {r.template_id for r in ctx.store.read(TEMPLATE_SOURCES).collect()}
    assert sources == {template.template_id} and ctx.store.count(TEMPLATE_SOURCES) == 2
    (seen,) = _with_later_sources(ctx.store.read(TEMPLATES), ctx.store.read(TEMPLATE_SOURCES)).collect()
    assert len(template.source_query_ids) == 1 and len(seen.source_query_ids) == 2

    calls = server.snapshot()["requests"]
    again = genericize.run(ctx)
    assert again.rows_in == 0 and server.snapshot()["requests"] == calls


def test_import_templates_bank(any_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path) -> None:
    """templates.bank_rules=ours: a bank gets genericize's validation and merging; re-import adds nothing."""
    ctx = make_ctx(any_engine, ["templates.bank_rules=ours"])
    rows = [
        {"template": "How do I <fi>cook a dish</fi> at home?", "compatible_document_description": DESC},
        {"template": "how do I <fi>prepare a meal</fi> at home", "compatible_document_description": DESC},
        {"template": "No slots here at all", "compatible_document_description": DESC},
        {"template": "Explain <fi>a concept", "compatible_document_description": DESC},
        {"compatible_document_description": DESC},
    ]
    bank = tmp_path / "bank.jsonl"
    bank.write_text("\n".join(json.dumps(r) for r in rows) + "\n[1, 2]\n")
    result = import_templates.run(ctx, str(bank))
    assert (result.rows_in, result.rows_out) == (6, 2)
    assert result.rejected == {"too_few_slots": 1, "malformed_tags": 1, "empty_template": 1, "malformed_row": 1}
    stored = ctx.store.read(TEMPLATES).collect()
    assert [(r.template, r.source_query_ids, r.origin) for r in stored] == [
        ("How do I <fi>cook a dish</fi> at home?", [], "bank:bank.jsonl")
    ]
    again = import_templates.run(ctx, str(bank))
    assert again.tables == {"templates": 0, "template_rejects": 0}


def test_genericize_every_request_failing_or_nothing_pending(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """HTTP 500 on every attempt: every query counted as llm_retries_exhausted, nothing stored, the stage fails
    with those counts attached; with no queries pending, a run returns zero rows without a request."""
    from fi_spark_testkit.fault_server import ServerSettings

    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"id": str(i), "text": q}) for i, q in enumerate(ANSWERS)) + "\n")
    with GenericizeServer(ServerSettings(fault_rate=1.0, fault_kinds=("500",))) as down:
        overrides = [f"llm.endpoints=[{down.url}]", "llm.model=test-model", "llm.max_attempts=2",
                     "templates.sample_queries=null"]  # fmt: skip
        ctx = make_ctx(embedded_engine, overrides)
        ingest_queries.run(ctx, str(queries))
        with pytest.raises(LLMFailureError) as err:  # stored what it could, then failed
            genericize.run(ctx)
    failed = err.value.result
    assert (failed.rows_in, failed.rows_out, failed.rejected) == (5, 0, {"llm_retries_exhausted": 5})
    assert failed.tables == {"templates": 0, "template_sources": 0, "template_rejects": 0}
    assert ctx.store.count(TEMPLATES) == ctx.store.count(TEMPLATE_REJECTS) == 0

    empty = make_ctx(embedded_engine, overrides, output=tmp_path / "empty")
    nothing = genericize.run(empty)
    assert (nothing.rows_in, nothing.rows_out, nothing.rejected, nothing.tables) == (0, 0, {}, {})


def test_genericize_v2_builds_templates_from_the_query(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """The local profile's genericize.v2: a writing task is skipped before any call, and the template is the
    query with the named span slotted (the test server names the query's last long word)."""
    with FaultServer() as srv:
        ctx = make_ctx(embedded_engine, [f"llm.endpoints=[{srv.url}]", "llm.model=test-model",
                                         "templates.prompt=genericize.v2", "templates.extractive_only=true",
                                         "templates.sample_queries=null"])  # fmt: skip
        queries = tmp_path / "q2.jsonl"
        rows = ["What is the capital of Peru?", "Write a haiku about rain."]
        queries.write_text("\n".join(json.dumps({"id": str(i), "text": q}) for i, q in enumerate(rows)) + "\n")
        ingest_queries.run(ctx, str(queries))
        result = genericize.run(ctx)
        assert (result.rows_in, result.rows_out, result.rejected) == (2, 1, {"query_not_extractive": 1})
        assert [t["template"] for t in ctx.store.read(TEMPLATES).collect()] == [
            "What is the capital of <fi>a thing asked about</fi>?"
        ]
        assert srv.stats.requests == 1  # the writing task cost no call
