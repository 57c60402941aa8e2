"""The crash-safe journal (fi_spark.llm.journal): small atomic parquet files, listed per run, removed after folding."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from fi_spark.llm.journal import ARROW_SCHEMA, JournalWriter, list_files, remove_run
from fi_spark.llm.types import LLMResult
from fi_spark.schemas import LLM_RESPONSES


def _writer(root: Path, run: str, rows: int = 3, seconds: float = 3600.0) -> JournalWriter:
    return JournalWriter(str(root / run), stage="s", model="m", run_id=run, flush_rows=rows, flush_s=seconds)


def test_arrow_schema_matches_ledger_table() -> None:
    """Workers write exactly the ledger's columns, in order."""
    assert ARROW_SCHEMA.names == LLM_RESPONSES.columns


def test_flushes_every_n_rows_and_on_close(tmp_path: Path) -> None:
    """Answers land in files of flush_rows rows; the remainder is written by the final flush."""
    w = _writer(tmp_path, "run1")
    for i in range(7):
        w.add(LLMResult(request_id=f"r{i}", content="x", retry_causes=["timeout"] if i == 0 else []))
    assert w.files == 2 and len(w.buffer) == 1
    w.flush()
    files = list_files(str(tmp_path))["run1"]
    assert len(files) == 3
    table = pq.read_table(files)
    assert sorted(table["request_id"].to_pylist()) == [f"r{i}" for i in range(7)]
    assert set(table["run_id"].to_pylist()) == {"run1"} and set(table["stage"].to_pylist()) == {"s"}
    assert ["timeout"] in table["retry_causes"].to_pylist()


def test_flushes_after_time(tmp_path: Path) -> None:
    """A slow trickle of answers is still written out after flush_s seconds."""
    w = _writer(tmp_path, "run1", rows=1000, seconds=0.0)
    w.add(LLMResult(request_id="r0", content="x"))
    assert w.files == 1 and not w.buffer


def test_partial_files_are_invisible_and_empty_tasks_leave_nothing(tmp_path: Path) -> None:
    """Half-written dot-files are never listed; a task that wrote nothing creates no folder."""
    empty = _writer(tmp_path, "run0")
    empty.flush()
    assert not (tmp_path / "run0").exists()
    w = _writer(tmp_path, "run1", rows=1)
    w.add(LLMResult(request_id="r0", content="x"))
    (tmp_path / "run1" / ".part-x.parquet.tmp").write_bytes(b"PAR1 partial")
    assert list_files(str(tmp_path)) == {"run1": [str(tmp_path / "run1" / f"part-{w.task}-00000.parquet")]}


def test_runs_are_listed_and_removed_separately(tmp_path: Path) -> None:
    """Each run folder is listed under its run id and can be removed alone; a missing root lists nothing."""
    for run in ("a", "b"):
        w = _writer(tmp_path, run, rows=1)
        w.add(LLMResult(request_id=run, content="x"))
    assert sorted(list_files(str(tmp_path))) == ["a", "b"]
    remove_run(str(tmp_path), "a")
    remove_run(str(tmp_path), "never-existed")
    assert sorted(list_files(str(tmp_path))) == ["b"]
    assert list_files(str(tmp_path / "nothing-here")) == {}
