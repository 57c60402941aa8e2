"""The crash-safe journal: Spark tasks append finished answers as small parquet files while they run.

Why: a Spark write only lands when its whole job succeeds, so a job killed after an hour of paid LLM
calls would keep nothing. Instead each task writes every `journal_flush_rows` answers (or every
`journal_flush_s` seconds) to `<journal>/<run_id>/part-<task>-<n>.parquet`, and the driver folds the
journal into the ledger tables (fi_spark.llm.spark) after the send step, and at the start of the next
call for anything a killed run left behind. Folding dedups by request id, so a file folded twice
(a crash between the ledger write and the file deletion) or a request answered twice (a Spark task
retry) still lands exactly once.

Atomicity: a local file is written under a dot-name (ignored by Spark and by `list_files`) and
renamed into place; an object store PUT (s3://) is atomic per object. Files are written with pyarrow
(`pyarrow.fs` speaks local paths and s3:// alike), so workers need no Spark session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fi_spark import storage
from fi_spark.llm.types import LLMResult

ARROW_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("stage", pa.string()),
        ("model", pa.string()),
        ("content", pa.string()),
        ("parsed", pa.string()),
        ("error_reason", pa.string()),
        ("error", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("total_ms", pa.float64()),
        ("attempts", pa.int32()),
        ("retry_causes", pa.list_(pa.string())),
        ("endpoint", pa.string()),
        ("finished_at_ms", pa.int64()),
        ("run_id", pa.string()),
    ]
)


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    return storage.filesystem(path)


def to_table(results: Iterable[LLMResult], *, stage: str, model: str, run_id: str) -> pa.Table:
    now = int(time.time() * 1000)  # for results built outside the client
    rows = [
        {
            "request_id": r.request_id,
            "stage": stage,
            "model": model,
            "content": r.content,
            "parsed": r.parsed,
            "error_reason": r.error_reason,
            "error": r.error,
            "finish_reason": r.finish_reason,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "latency_ms": r.latency_ms,
            "total_ms": r.total_ms,
            "attempts": r.attempts,
            "retry_causes": list(r.retry_causes),
            "endpoint": r.endpoint,
            "finished_at_ms": r.finished_at_ms or now,
            "run_id": run_id,
        }
        for r in results
    ]
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


class JournalWriter:
    """Buffers results of one task and writes them out in small atomic parquet files."""

    def __init__(self, run_dir: str, *, stage: str, model: str, run_id: str, flush_rows: int, flush_s: float):
        self.fs, self.dir = _fs(run_dir)  # created at the first flush: a task with nothing to send leaves no trace
        self.stage, self.model, self.run_id = stage, model, run_id
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.task = uuid.uuid4().hex[:12]
        self.buffer: list[LLMResult] = []
        self.files = 0
        self.rows = 0
        self._last = time.monotonic()

    def add(self, result: LLMResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.flush_rows or time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self.buffer:
            return
        table = to_table(self.buffer, stage=self.stage, model=self.model, run_id=self.run_id)
        if self.files == 0:
            self.fs.create_dir(self.dir, recursive=True)
        name = f"part-{self.task}-{self.files:05d}.parquet"
        final = f"{self.dir}/{name}"
        if isinstance(self.fs, pafs.LocalFileSystem):
            tmp = f"{self.dir}/.{name}.tmp"
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.move(tmp, final)
        else:
            pq.write_table(table, final, filesystem=self.fs)
        self.files += 1
        self.rows += len(self.buffer)
        self.buffer = []


def list_files(root: str) -> dict[str, list[str]]:
    """run_id -> journal files (as URIs/paths Spark can read), for every run folder under `root`."""
    fs, base = _fs(root)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        return {}
    runs: dict[str, list[str]] = {}
    prefix = root.split(":", 1)[0] + "://" if storage.is_remote(root) else ""
    for item in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        name = item.base_name
        if item.type != pafs.FileType.File or name.startswith(".") or not name.endswith(".parquet"):
            continue
        run_id = item.path[len(base) :].strip("/").split("/")[0]
        runs.setdefault(run_id, []).append(prefix + item.path if prefix else item.path)
    return runs


def remove_run(root: str, run_id: str) -> None:
    storage.delete(storage.join(root, run_id))
