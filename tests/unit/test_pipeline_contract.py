"""The declared stage contract (fi_spark.stages.base.StageTables read by fi_spark.run.pipeline), without Spark."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from fi_spark.run.pipeline import check_result, layout, producers, require_inputs
from fi_spark.run.session import declared
from fi_spark.stages.base import AccountingError, MissingInputError, StageResult
from fi_spark.stages.registry import STAGES, stage
from tests.conftest import REPO


def test_help_does_not_import_pyspark():
    """`fi-spark --help` builds every subcommand from the registry without importing pyspark."""
    code = (
        "import sys\nfrom fi_spark.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('PYSPARK', sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "judge" in out.stdout and out.stdout.strip().endswith("PYSPARK []")


def test_every_declared_read_is_written_by_an_earlier_stage():
    """Pipeline order is consistent with the declarations: each stage's inputs come from stages before it."""
    order = [s.name for s in STAGES]
    for spec in STAGES:
        for table in declared(spec).reads:
            writers = producers(table.name)
            assert writers, f"{spec.name} reads {table.name}, which no stage writes"
            assert min(order.index(w) for w in writers) < order.index(spec.name), (spec.name, table.name)


def test_declarations_name_the_stage_tables():
    """The LLM stages declare their tables; producers and the report's table list come from the declarations."""
    assert [t.name for t in declared(stage("judge")).reads] == ["pairs", "documents", "chunks"]
    assert [t.name for t in declared(stage("instantiate")).writes][:2] == ["pairs", "pair_rejects"]
    assert producers("templates") == ["genericize", "import_templates"]
    assert producers("llm_responses") == ["genericize", "instantiate", "judge"]
    assert list(layout().tables)[:4] == ["documents", "chunks", "duplicates", "doc_rejects"]
    assert {"pairs", "judged", "matches", "queries"} <= set(list(layout().tables))


def test_missing_input_names_the_stage_to_run_first():
    """A missing declared input is one MissingInputError (a ConfigError: CLI exit 2) naming the producer(s)."""
    ctx = SimpleNamespace(store=SimpleNamespace(exists=lambda table: table.name != "templates"))
    with pytest.raises(MissingInputError, match=r"build_index needs the `templates` table.*run genericize or "
                       r"import_templates first"):  # fmt: skip
        require_inputs(ctx, stage("build_index"))  # type: ignore[arg-type]
    nothing = SimpleNamespace(store=SimpleNamespace(exists=lambda table: False))
    with pytest.raises(MissingInputError, match=r"^judge needs the `pairs` table, which does not exist: run "
                       r"instantiate first$"):  # fmt: skip
        require_inputs(nothing, stage("judge"))  # type: ignore[arg-type]
    require_inputs(nothing, stage("prepare_corpus"))  # type: ignore[arg-type]  # reads files, no table


def test_result_check_reads_the_declaration():
    """A result reporting an undeclared table, or rows that do not add up, raises AccountingError."""
    judge_tables = declared(stage("judge"))
    check_result(StageResult("judge", 3, 1, {"below_threshold": 2}, tables={"judged": 3}), judge_tables)
    with pytest.raises(AccountingError, match="undeclared table"):
        check_result(StageResult("judge", 1, 1, tables={"pairs": 1}), judge_tables)
    with pytest.raises(AccountingError, match="rows in 3 != out 1"):
        check_result(StageResult("judge", 3, 1, {"llm_retries_exhausted": 1}, tables={"judged": 1}), judge_tables)


def test_encoded_messages_give_the_same_request_id():
    """Hashing the canonical messages string equals hashing the messages: one encoding, same ledger ids."""
    from fi_spark.llm.types import canonical_json, request_id

    messages = [{"role": "system", "content": 'Ünïcode "quoted"\n'}, {"role": "user", "content": "q"}]
    params = {"max_tokens": 8, "temperature": 0.0, "response_format": {"b": [1], "a": None}}
    by_list = request_id(model="m", stage="judge", params=params, messages=messages)
    by_text = request_id(model="m", stage="judge", params=params, messages_json=canonical_json(messages))
    assert by_list == by_text
    assert by_text != request_id(model="m", stage="judge", params=params, messages_json=canonical_json(messages[1:]))
