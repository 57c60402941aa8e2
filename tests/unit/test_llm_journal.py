"""The crash-safe journal (fi_spark.llm.journal): one JSON line per answer, written at once, fsyncs batched,
torn lines skipped, per-partition folders for task retries, listed per run, removed after folding."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs

from fi_spark.llm.journal import (
    ARROW_SCHEMA,
    JournalWriter,
    answered_ids,
    list_files,
    read_rows,
    remove_run,
    to_table,
)
from fi_spark.llm.types import LLMResult
from fi_spark.schemas import LLM_RESPONSES


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _writer(root: Path, run: str, partition: int | None = 0, clock: Clock | None = None) -> JournalWriter:
    return JournalWriter(
        str(root / run), stage="s", model="m", run_id=run, partition=partition, fsync_s=1.0, clock=clock or Clock()
    )


def test_arrow_schema_matches_ledger_table() -> None:
    """Workers write exactly the ledger's columns, in order."""
    assert ARROW_SCHEMA.names == LLM_RESPONSES.columns
    row = to_table([LLMResult(request_id="r", content="x")], stage="s", model="m", run_id="run").to_pylist()[0]
    assert list(row) == LLM_RESPONSES.columns


def test_every_answer_is_on_disk_before_add_returns(tmp_path: Path) -> None:
    """Each add is readable from the file at once (no buffer a kill could lose), with every ledger column."""
    w = _writer(tmp_path, "run1", partition=3)
    for i in range(3):
        w.add(LLMResult(request_id=f"r{i}", content="x", cached_tokens=i, server_ms=12.5, retry_causes=["timeout"]))
        files = list_files(str(tmp_path))["run1"]
        assert len(files) == 1 and files[0].startswith(str(tmp_path / "run1" / "p00003"))
        rows = list(read_rows(files[0]))
        assert [r["request_id"] for r in rows] == [f"r{j}" for j in range(i + 1)]
    assert rows[2]["cached_tokens"] == 2 and rows[2]["server_ms"] == 12.5 and rows[2]["retry_causes"] == ["timeout"]
    assert set(rows[0]) == set(LLM_RESPONSES.columns) and rows[0]["run_id"] == "run1" and rows[0]["stage"] == "s"
    w.close()


def test_fsyncs_are_batched_by_time(tmp_path: Path) -> None:
    """Answers arriving within fsync_s share one fsync; the timer (tick) syncs a trickle that then stops."""
    clock = Clock()
    w = _writer(tmp_path, "run1", clock=clock)
    for i in range(5):
        clock.now = i * 0.1
        w.add(LLMResult(request_id=f"r{i}", content="x"))
    assert w.syncs == 0 and w.rows == 5
    clock.now = 1.2
    w.tick()
    assert w.syncs == 1
    w.tick()  # nothing new written: no fsync
    clock.now = 1.3
    w.add(LLMResult(request_id="r5", content="x"))
    clock.now = 2.4
    w.tick()
    assert w.syncs == 2
    w.close()
    assert w.syncs == 2  # close syncs only what is not synced yet


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A line cut by a kill mid-write is ignored by readers; the complete lines before it are kept."""
    w = _writer(tmp_path, "run1")
    w.add(LLMResult(request_id="r0", content="x"))
    w.close()
    path = list_files(str(tmp_path))["run1"][0]
    with open(path, "ab") as f:
        f.write(b'{"request_id":"r1","stage":"s","con')
    assert [r["request_id"] for r in read_rows(path)] == ["r0"]


def test_lone_surrogates_are_replaced_not_fatal(tmp_path: Path) -> None:
    """Model text with a lone surrogate (a JSON \\ud800 escape) is journaled with U+FFFD instead of failing."""
    w = _writer(tmp_path, "run1")
    w.add(LLMResult(request_id="r0", content='{"a": "x\ud800y \U0001f600"}'))
    w.close()
    (row,) = read_rows(list_files(str(tmp_path))["run1"][0])
    assert row["content"] == '{"a": "x\ufffdy \U0001f600"}'


def test_answered_ids_reads_only_this_partition_and_final_results(tmp_path: Path) -> None:
    """A retried task sees the answers and final errors of its own partition; transient failures are sent again."""
    first = _writer(tmp_path, "run1", partition=1)
    first.add(LLMResult(request_id="ok", content="x"))
    first.add(LLMResult(request_id="final", error_reason="http_400"))
    first.add(LLMResult(request_id="transient", error_reason="retries_exhausted"))
    other = _writer(tmp_path, "run1", partition=2)
    other.add(LLMResult(request_id="elsewhere", content="x"))
    for w in (first, other):
        w.close()
    assert answered_ids(str(tmp_path / "run1"), 1) == {"ok", "final"}
    assert answered_ids(str(tmp_path / "run1"), 7) == set()
    assert answered_ids(str(tmp_path / "never"), 1) == set()


def test_empty_tasks_leave_nothing_and_dot_files_are_invisible(tmp_path: Path) -> None:
    """A task with nothing to journal creates no folder; dot-files are never listed."""
    empty = _writer(tmp_path, "run0")
    empty.close()
    assert not (tmp_path / "run0").exists()
    w = _writer(tmp_path, "run1", partition=None)
    w.add(LLMResult(request_id="r0", content="x"))
    w.close()
    (tmp_path / "run1" / "p-any" / ".x.jsonl.tmp").write_bytes(b"partial")
    assert list_files(str(tmp_path)) == {"run1": [str(tmp_path / "run1" / "p-any" / f"{w.attempt}.jsonl")]}


def test_runs_are_listed_and_removed_separately(tmp_path: Path) -> None:
    """Each run folder is listed under its run id and can be removed alone; a missing root lists nothing."""
    for run in ("a", "b"):
        w = _writer(tmp_path, run)
        w.add(LLMResult(request_id=run, content="x"))
        w.close()
    assert sorted(list_files(str(tmp_path))) == ["a", "b"]
    remove_run(str(tmp_path), "a")
    remove_run(str(tmp_path), "never-existed")
    assert sorted(list_files(str(tmp_path))) == ["b"]
    assert list_files(str(tmp_path / "nothing-here")) == {}


def test_object_store_writes_one_object_per_batch(tmp_path: Path) -> None:
    """Without append (s3://), answers go out as one object per batch_rows answers or fsync_s seconds."""
    clock = Clock()
    w = JournalWriter(str(tmp_path / "run1"), stage="s", model="m", run_id="run1", partition=0, fsync_s=1.0,
                      batch_rows=3, clock=clock)  # fmt: skip
    w.remote = True  # the local filesystem through the object-store code path
    w.fs = pafs.LocalFileSystem()
    for i in range(4):
        w.add(LLMResult(request_id=f"r{i}", content="x"))
    assert w.syncs == 1 and w.rows == 3  # 3 rows out, one buffered
    clock.now = 1.5
    w.tick()
    assert w.syncs == 2 and w.rows == 4
    files = sorted(list_files(str(tmp_path))["run1"])
    assert [len(list(read_rows(f))) for f in files] == [3, 1]
    assert json.loads(Path(files[1]).read_text())["request_id"] == "r3"
