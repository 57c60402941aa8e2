"""import_templates on a FineTemplates-contract bank (JSONL and Parquet): kept as released, provenance kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from fi_spark.engine import Engine
from fi_spark.genericize import import_templates
from fi_spark.schemas import TEMPLATE_REJECTS, TEMPLATES
from fi_spark.stages.base import StageContext

DESC = "A cooking guide that explains how to prepare a dish at home, step by step."
ROWS = [  # the released bank's record shape: id, source_query_id, template, compatible_document_description, ...
    {"id": "t1", "source_query_id": "q-17", "template": "How do I <fi>cook a dish</fi> at home?",
     "compatible_document_description": DESC, "slot_count": 1},
    {"id": "t2", "source_query_id": "q-03", "template": "how do I <fi>prepare a meal</fi> at home",
     "compatible_document_description": DESC, "slot_count": 1},
    {"id": "t3", "source_query_id": "q-44", "template": "How do I cook a mé<fi>dish</fi>m at home?",
     "compatible_document_description": DESC, "slot_count": 1},
    {"id": "t4", "source_query_id": "q-45", "template": "Compare <fi>a dish</fi> with <fi>a dish</fi>.",
     "compatible_document_description": DESC, "slot_count": 2},
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_finetemplates_bank_import_keeps_provenance(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path, fmt: str
) -> None:
    """bank_rules=ours: valid rows merge with both source query ids and the generator; our rules reject the rest."""
    ctx = make_ctx(
        embedded_engine,
        [  # snap_slots off: the glued slot is this test's `slot_splits_word` row (snapping: test_templates_validate)
            "templates.bank_generator=fineinstructions/query_templatizer",
            "templates.bank_rules=ours",
            "templates.snap_slots=false",
        ],
    )
    if fmt == "jsonl":
        bank = tmp_path / "finetemplates.jsonl"
        bank.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n", encoding="utf-8")
    else:
        bank = tmp_path / "finetemplates.parquet"
        pd.DataFrame(ROWS).to_parquet(bank)
    result = import_templates.run(ctx, str(bank))
    assert (result.rows_in, result.rows_out, result.rejected) == (4, 2, {"slot_splits_word": 1, "repeated_slot": 1})
    stored = [(r.template, r.source_query_ids, r.origin, r.model) for r in ctx.store.read(TEMPLATES).collect()]
    assert stored == [
        ("How do I <fi>cook a dish</fi> at home?", ["q-03", "q-17"], f"bank:{bank.name}",
         "fineinstructions/query_templatizer")
    ]  # fmt: skip
    rejects = sorted((r.reason, r.template) for r in ctx.store.read(TEMPLATE_REJECTS).collect())
    assert rejects == [
        ("repeated_slot", "Compare <fi>a dish</fi> with <fi>a dish</fi>."),
        ("slot_splits_word", "How do I cook a mé<fi>dish</fi>m at home?"),
    ]


def test_bank_generator_column_wins_over_the_default(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """A bank row that names its generator keeps it; without templates.bank_generator others stay null."""
    ctx = make_ctx(embedded_engine)
    bank = tmp_path / "own.jsonl"
    rows = [{**ROWS[0], "generator": "my-org/templatizer-8b"}]
    bank.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    import_templates.run(ctx, str(bank))
    assert [(r.source_query_ids, r.model) for r in ctx.store.read(TEMPLATES).collect()] == [
        (["q-17"], "my-org/templatizer-8b")
    ]


MANY = "Plan <fi>a trip</fi> " + " ".join(f"and <fi>stop number {i}</fi>" for i in range(11)) + "."
RELEASED_ROWS = [
    *ROWS,
    {"id": "t5", "source_query_id": "q-50", "template": MANY, "compatible_document_description": "Travel."},
    {"id": "t6", "source_query_id": "q-51", "template": "No slot tags at all",
     "compatible_document_description": DESC},
    {"id": "t7", "source_query_id": "q-52", "template": "Explain <fi>a concept",
     "compatible_document_description": DESC},
    {"id": "t8", "source_query_id": "q-53", "template": "Why is <fi>a thing</fi> so?",
     "compatible_document_description": ""},
]  # fmt: skip


def test_released_bank_is_kept_as_released(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """bank_rules=released (the default) keeps every usable row as its own template (12 slots, a 7-character
    description, a glued or a repeated slot) and rejects only rows with no slot, broken tags or no description."""
    ctx = make_ctx(embedded_engine)
    bank = tmp_path / "finetemplates.jsonl"
    bank.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RELEASED_ROWS) + "\n", encoding="utf-8")
    result = import_templates.run(ctx, str(bank))
    assert (result.rows_in, result.rows_out) == (8, 5)
    assert result.rejected == {"too_few_slots": 1, "malformed_tags": 1, "missing_description": 1}
    stored = sorted((r.source_query_ids[0], r.n_slots, r.template) for r in ctx.store.read(TEMPLATES).collect())
    assert stored == [
        ("q-03", 1, "how do I <fi>prepare a meal</fi> at home"),
        ("q-17", 1, "How do I <fi>cook a dish</fi> at home?"),
        ("q-44", 1, "How do I cook a mé<fi>dish</fi>m at home?"),
        ("q-45", 2, "Compare <fi>a dish</fi> with <fi>a dish</fi>."),
        ("q-50", 12, MANY),
    ]
    rejects = sorted((r.reason, r.template) for r in ctx.store.read(TEMPLATE_REJECTS).collect())
    assert rejects == [
        ("malformed_tags", "Explain <fi>a concept"),
        ("missing_description", "Why is <fi>a thing</fi> so?"),
        ("too_few_slots", "No slot tags at all"),
    ]
