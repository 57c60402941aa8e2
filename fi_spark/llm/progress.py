"""Progress of a `complete` call you can watch: requests done / total, requests/s, tokens/s and an ETA.

Why journal files: the send step is one Spark action, and its tasks cannot log to the driver (on Spark
Connect and Sail the Python workers run in the server's processes; on a cluster, on executors). But every
task already journals each finished request as one JSON line the moment it arrives (fi_spark.llm.journal),
under `<journal>/<run_id>/`, a folder the driver can read (local, a mount, or s3://). A driver thread
re-reads that folder every `llm.progress_s` seconds -- only the bytes added since its last look (local files
grow; s3:// objects are immutable and read once) -- and logs one line. On s3:// the count lags by the
journal's batch interval (`llm.journal_flush_s`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

import pyarrow.fs as pafs

from fi_spark import storage


def format_duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`: short and fixed-width enough for a log line."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_progress(stage: str, done: int, total: int, failed: int, tokens: int, seconds: float) -> str:
    """One progress line; rates over the whole call so far, ETA = what is left at that rate."""
    rate = done / seconds if seconds > 0 else 0.0
    share = f" ({done / total:.0%})" if total else ""
    failures = f", {failed} failed" if failed else ""
    if done >= total:
        eta = "done"
    elif rate > 0:
        eta = f"ETA {format_duration((total - done) / rate)}"
    else:
        eta = "ETA unknown (nothing finished yet)"
    tokens_rate = tokens / seconds if seconds > 0 else 0.0
    return (
        f"llm {stage}: {done}/{total} requests done{share}{failures}, {rate:.2f} requests/s, "
        f"{tokens_rate:,.0f} tokens/s, {format_duration(seconds)} elapsed, {eta}"
    )


class JournalCounter:
    """Finished requests (journal lines) and their tokens under one run's journal folder, read incrementally."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.done = 0
        self.failed = 0  # transient failures (an error_reason that is not final is still a finished attempt)
        self.tokens = 0
        self._read: dict[str, int] = {}  # path -> bytes consumed (up to the last complete line)

    def scan(self) -> None:
        fs, base = storage.filesystem(self.run_dir)
        if fs.get_file_info(base).type == pafs.FileType.NotFound:
            return
        for item in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if item.type != pafs.FileType.File or not item.base_name.endswith(".jsonl"):
                continue
            seen = self._read.get(item.path, 0)
            if item.size is None or item.size <= seen:
                continue
            with fs.open_input_file(item.path) as fh:
                data = fh.read_at(item.size - seen, seen)
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self._read[item.path] = seen + end
            for raw in data[:end].split(b"\n"):
                self._count(raw)

    def _count(self, raw: bytes) -> None:
        try:
            row = json.loads(raw)
        except ValueError:
            return
        if not isinstance(row, dict):
            return
        self.done += 1
        self.failed += row.get("error_reason") is not None
        self.tokens += int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)


class ProgressLog:
    """A driver thread logging `format_progress` every `interval_s` while a block runs (0 = off)."""

    def __init__(
        self,
        stage: str,
        run_dir: str,
        total: int,
        interval_s: float,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage, self.total, self.interval_s, self.log, self.clock = stage, total, interval_s, log, clock
        self.counter = JournalCounter(run_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()

    def __enter__(self) -> ProgressLog:
        self._started = self.clock()
        if self.interval_s > 0 and self.total > 0:
            self._thread = threading.Thread(target=self._loop, name=f"fi-spark-progress-{self.stage}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)

    def line(self) -> str:
        self.counter.scan()
        c = self.counter
        return format_progress(self.stage, c.done, self.total, c.failed, c.tokens, self.clock() - self._started)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.log.info("%s", self.line())
            except Exception as exc:  # a listing that failed once (a throttled s3 LIST): say so, keep going
                self.log.debug("llm %s: progress not read (%s)", self.stage, exc)
