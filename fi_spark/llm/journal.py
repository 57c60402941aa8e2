"""The crash-safe journal: every answer is written out the moment it arrives, while the Spark task runs.

Why: a Spark write only lands when its whole job succeeds, so a job killed after an hour of paid LLM
calls would keep nothing. Instead each task attempt appends every final answer as one JSON line to
`<journal>/<run_id>/p<partition>/<attempt>.jsonl` and flushes it to the OS at once (`write(2)`), so a
SIGKILL of the job loses no answer the client had read; `fsync` (what survives a machine crash) is
batched, at most `fsync_s` apart. The driver folds the journal into the ledger tables
(fi_spark.llm.spark) after the send step, and at the start of the next call for anything a killed run
left behind. Folding dedups by request id, so a file folded twice (a crash between the ledger write and
the file deletion) or a request answered twice (a Spark task retry) still lands exactly once.

Why this cause matters (measured, see tests/integration/test_kill_resume.py): the earlier journal
buffered 64 answers or 5 s *per task*, the time checked only when the next answer arrived; with 8
tasks sharing one 4-slot server no task ever reached 64 rows, so a kill lost up to 5 s of the whole
job's answers (158 of 174 answered requests were sent again after one kill).

Object stores (s3://) have no append: there each task PUTs one object per batch of answers, at most
`batch_s` seconds (or `batch_rows` answers) apart, driven by a timer as well as by arrivals, so a kill
loses at most the last ~`batch_s` seconds of answers per task. That is the honest equivalent of a
flushed append on S3; a local or mounted (DBFS / NFS) output folder gets the per-answer guarantee.

A killed writer can leave a torn last line; readers skip lines that are not complete JSON objects.
Per-partition folders let a Spark task retry read only its own partition's earlier answers
(`answered_ids`) and skip them. Files are written with `pyarrow.fs` for s3:// (workers need no Spark).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs

from fi_spark import storage
from fi_spark.llm.types import FINAL_REASONS, LLMResult

ARROW_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("stage", pa.string()),
        ("model", pa.string()),
        ("content", pa.string()),
        ("parsed", pa.string()),
        ("logprobs", pa.string()),
        ("error_reason", pa.string()),
        ("error", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("server_ms", pa.float64()),
        ("total_ms", pa.float64()),
        ("attempts", pa.int32()),
        ("retry_causes", pa.list_(pa.string())),
        ("endpoint", pa.string()),
        ("finished_at_ms", pa.int64()),
        ("run_id", pa.string()),
    ]
)
SUFFIXES = (".jsonl", ".parquet")  # .parquet: journals written by fi-spark before the per-answer journal


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    return storage.filesystem(path)


def _uri_prefix(root: str) -> str:
    """What turns a path pyarrow listed back into a URI like `root` (`s3://`; nothing for local paths)."""
    return storage.scheme(root) + "://" if storage.is_remote(root) else ""


def utf8_safe(text: str | None) -> str | None:
    """`text` with lone surrogates (a JSON `\\ud800` escape in a model's answer) replaced by U+FFFD: Arrow
    strings are UTF-8, and a row that cannot be encoded would otherwise be lost at the fold."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def to_row(r: LLMResult, *, stage: str, model: str, run_id: str) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "stage": stage,
        "model": model,
        "content": utf8_safe(r.content),
        "parsed": utf8_safe(r.parsed),
        "logprobs": r.logprobs,
        "error_reason": r.error_reason,
        "error": utf8_safe(r.error),
        "finish_reason": r.finish_reason,
        "prompt_tokens": r.prompt_tokens,
        "cached_tokens": r.cached_tokens,
        "completion_tokens": r.completion_tokens,
        "latency_ms": r.latency_ms,
        "server_ms": r.server_ms,
        "total_ms": r.total_ms,
        "attempts": r.attempts,
        "retry_causes": list(r.retry_causes),
        "endpoint": r.endpoint,
        "finished_at_ms": r.finished_at_ms or int(time.time() * 1000),  # for results built outside the client
        "run_id": run_id,
    }


def to_table(results: Iterable[LLMResult], *, stage: str, model: str, run_id: str) -> pa.Table:
    rows = [to_row(r, stage=stage, model=model, run_id=run_id) for r in results]
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def _line(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def partition_dir(run_dir: str, partition: int | None) -> str:
    return f"{run_dir.rstrip('/')}/p{partition:05d}" if partition is not None else f"{run_dir.rstrip('/')}/p-any"


class JournalWriter:
    """Journals the final results of one task attempt; `add` is called once per answer, as it arrives."""

    def __init__(
        self,
        run_dir: str,
        *,
        stage: str,
        model: str,
        run_id: str,
        partition: int | None = None,
        fsync_s: float = 1.0,
        batch_rows: int = 64,
        clock: Any = time.monotonic,
    ) -> None:
        self.fs, self.dir = _fs(partition_dir(run_dir, partition))  # created at the first answer
        self.remote = not isinstance(self.fs, pafs.LocalFileSystem)
        self.stage, self.model, self.run_id = stage, model, run_id
        self.fsync_s, self.batch_rows, self.clock = fsync_s, batch_rows, clock
        self.attempt = uuid.uuid4().hex[:12]
        self.rows = 0  # answers journaled (written to the OS locally; PUT on an object store)
        self.syncs = 0  # fsyncs (local) or objects written (remote)
        self._file: IO[bytes] | None = None
        self._dirty = False  # written since the last fsync
        self._buffer: list[bytes] = []  # remote only
        self._last = clock()

    def add(self, result: LLMResult) -> None:
        line = _line(to_row(result, stage=self.stage, model=self.model, run_id=self.run_id))
        if self.remote:
            self._buffer.append(line)
            if len(self._buffer) >= self.batch_rows:
                self._put()
        else:
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(line)
            self._file.flush()  # in the OS now: survives a kill of this process
            self._dirty = True
            self.rows += 1
        self.tick()

    def tick(self) -> None:
        """Make what was added durable when `fsync_s` has passed; callers also run it on a timer."""
        if self.clock() - self._last >= self.fsync_s:
            self.sync()

    def sync(self) -> None:
        self._last = self.clock()
        if self.remote:
            self._put()
        elif self._file is not None and self._dirty:
            os.fsync(self._file.fileno())
            self._dirty = False
            self.syncs += 1

    def close(self) -> None:
        self.sync()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, f"{self.attempt}.jsonl")
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the task's lifetime, closed in close()
        fd = os.open(self.dir, os.O_RDONLY)
        try:  # the new file's directory entry, so a machine crash cannot lose the whole file
            os.fsync(fd)
        finally:
            os.close(fd)

    def _put(self) -> None:
        if not self._buffer:
            return
        if self.syncs == 0:
            self.fs.create_dir(self.dir, recursive=True)
        with self.fs.open_output_stream(f"{self.dir}/{self.attempt}-{self.syncs:06d}.jsonl") as out:
            out.write(b"".join(self._buffer))
        self.syncs += 1
        self.rows += len(self._buffer)
        self._buffer = []


def read_rows(path: str) -> Iterator[dict[str, Any]]:
    """The complete rows of one journal file (a torn last line of a killed writer is skipped)."""
    fs, p = _fs(path)
    if p.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(p, filesystem=fs).to_pylist()
        return
    data = storage.read_bytes(path)  # retried when a small object's GET is throttled (fi_spark.storage)
    for raw in data.split(b"\n"):
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("request_id"), str):
            yield row


def answered_ids(run_dir: str, partition: int | None) -> set[str]:
    """Request ids with a final result journaled by earlier attempts of this partition (a Spark task retry)."""
    fs, base = _fs(partition_dir(run_dir, partition))
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return set()
    prefix = _uri_prefix(run_dir)
    ids: set[str] = set()
    for item in fs.get_file_info(pafs.FileSelector(base)):
        if item.type == pafs.FileType.File and item.base_name.endswith(".jsonl"):
            for row in read_rows(prefix + item.path):
                if row.get("error_reason") is None or row["error_reason"] in FINAL_REASONS:
                    ids.add(row["request_id"])
    return ids


def list_files(root: str) -> dict[str, list[str]]:
    """run_id -> journal files (as URIs/paths Spark can read), for every run folder under `root`."""
    fs, base = _fs(root)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        return {}
    runs: dict[str, list[str]] = {}
    prefix = _uri_prefix(root)
    for item in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        name = item.base_name
        if item.type != pafs.FileType.File or name.startswith(".") or not name.endswith(SUFFIXES):
            continue
        run_id = item.path[len(base) :].strip("/").split("/")[0]
        runs.setdefault(run_id, []).append(prefix + item.path if prefix else item.path)
    return runs


def remove_run(root: str, run_id: str) -> None:
    storage.delete(storage.join(root, run_id))
