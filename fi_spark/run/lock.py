"""One run per output folder: ``<output>/_run.lock`` names the live run (pid, host, start time, heartbeat).

Why a lock and not Delta's optimistic concurrency: Delta's commit protocol makes one *table commit* atomic,
but a run is more than Delta commits. Two runs on one folder would both fold the same LLM journal into the
ledger (answers counted and written twice), both rewrite Parquet tables (no commit protocol at all: a reader
or the other writer sees a half-replaced folder), and share ``_work`` and the report/export files. So
``fi_spark.run.session.open_run`` takes this lock before it starts the engine, holds it for the whole run, and a
second run (pipeline or a single stage) refuses at once with a ``RunLockedError`` (a ConfigError: the CLI
prints one line and exits 2) that names the other run and what to do.

The lock file is JSON ``{pid, host, started, heartbeat, command, token}``. A daemon thread rewrites
``heartbeat`` every ``heartbeat_s`` (atomically: temporary file + rename). A lock is *stale*, and is
taken over with one warning line, when its pid is dead on this host, or when its heartbeat is older than
``stale_after_s`` (another host, where the pid cannot be checked, or a reused pid here). Release removes
the file only if it still holds this run's token; it happens on normal exit and on exceptions (and a
SIGKILLed run leaves a lock the next run takes over as stale).

Local folders: the lock is created atomically (hard link of a complete temporary file, or O_EXCL), so
exactly one of two racing runs gets it. ``s3://`` (and other object-store) outputs: object stores have no
create-if-absent through ``pyarrow.fs``, so there the lock is an object with the same fields and heartbeat,
written and read back after a short settle to detect a racing writer: best-effort and *advisory* (a
warning says so); runs sharing an s3:// output must still be coordinated by whoever starts them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from fi_spark import storage
from fi_spark.config import ConfigError
from fi_spark.procs import pid_alive

log = logging.getLogger("fi_spark")

LOCK_NAME = "_run.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # 10 minutes without a heartbeat: the holder is gone (or its host is)
_S3_SETTLE_S = 1.0


class RunLockedError(ConfigError):
    """Another live run holds the output folder."""


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    started: float  # unix seconds
    heartbeat: float
    command: str
    token: str

    def describe(self, now: float | None = None) -> str:
        started = datetime.fromtimestamp(self.started, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = max(0.0, (now or time.time()) - self.heartbeat)
        what = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on host {self.host}, started {started}{what}, last heartbeat {age:.0f} s ago"

    @staticmethod
    def parse(text: str) -> LockInfo | None:
        try:
            raw = json.loads(text)
            return LockInfo(
                int(raw["pid"]), str(raw["host"]), float(raw["started"]), float(raw["heartbeat"]),
                str(raw.get("command", "")), str(raw["token"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None


def stale_reason(info: LockInfo, host: str, now: float, stale_after_s: float) -> str | None:
    """Why the lock's holder is gone, or None when it may still be running."""
    if info.host == host and not pid_alive(info.pid):
        return f"pid {info.pid} is not running on this host"
    if now - info.heartbeat > stale_after_s:
        return f"no heartbeat for {now - info.heartbeat:.0f} s (more than {stale_after_s:.0f} s)"
    return None


def _command() -> str:
    """`fi-spark pipeline` / `cli.py judge`: the program and its subcommand only (never --set values)."""
    argv = sys.argv or [""]
    words = [os.path.basename(argv[0])] + [a for a in argv[1:2] if not a.startswith("-")]
    return " ".join(w for w in words if w)


class _Local:
    def __init__(self, path: str) -> None:
        self.path = path

    def create(self, text: str) -> bool:
        """Create the lock with its full content, or False when it exists (atomic)."""
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network file systems): exclusive create instead
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def read(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def replace(self, text: str) -> None:
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.path)

    def take_over(self, stale: LockInfo, text: str) -> bool:
        """Move the stale lock aside (one racer wins the rename), check it was the stale one, then create."""
        aside = f"{self.path}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return self.create(text)
        with open(aside, encoding="utf-8") as fh:
            moved = LockInfo.parse(fh.read())
        if moved is not None and moved.token != stale.token:  # a fresh lock appeared meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            os.unlink(aside)
            return False
        os.unlink(aside)
        return self.create(text)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Object:
    """The lock as an object (s3://...) through pyarrow.fs: best-effort, advisory."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.path = storage.filesystem(uri)  # fi_spark.storage's client: its retries on throttling

    def read(self) -> str | None:
        try:
            return storage.read_bytes(self.uri).decode("utf-8")
        except (FileNotFoundError, OSError):
            return None

    def replace(self, text: str) -> None:
        with self.fs.open_output_stream(self.path) as fh:
            fh.write(text.encode("utf-8"))

    def create(self, text: str) -> bool:
        if self.read() is not None:
            return False
        self.replace(text)
        time.sleep(_S3_SETTLE_S)  # a racing writer's object would have replaced ours by now
        now = LockInfo.parse(self.read() or "")
        return now is not None and now.token == json.loads(text)["token"]

    def take_over(self, stale: LockInfo, text: str) -> bool:
        current = LockInfo.parse(self.read() or "")
        if current is not None and current.token != stale.token:
            return False
        self.delete()
        return self.create(text)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self.path)


class RunLock:
    """``with RunLock(output): ...`` holds ``<output>/_run.lock`` or raises RunLockedError naming the holder."""

    def __init__(self, output: str, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        self.output = output.rstrip("/")
        self.path = f"{self.output}/{LOCK_NAME}"
        self.remote = storage.is_remote(output)
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.host = socket.gethostname()
        self.info: LockInfo | None = None
        self._store: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _text(self, info: LockInfo) -> str:
        return json.dumps(asdict(info), sort_keys=True)

    def acquire(self) -> RunLock:
        self._store = _Object(self.path) if self.remote else _Local(self.path)
        if self.remote:
            log.warning("output %s is an object store: the run lock %s is advisory (best-effort, no atomic "
                        "create); do not start two runs on it at once", self.output, LOCK_NAME)  # fmt: skip
        now = time.time()
        mine = LockInfo(os.getpid(), self.host, now, now, _command(), uuid.uuid4().hex)
        text = self._text(mine)
        for _ in range(5):  # a few rounds: the holder may be releasing, or another run taking over a stale lock
            if self._store.create(text):
                break
            raw = self._store.read()
            if raw is None:
                continue  # released between our create and read: try again
            other = LockInfo.parse(raw)
            if other is None:  # half-written by a run killed while creating it, or not ours at all
                other = LockInfo(0, "?", 0.0, 0.0, "unreadable lock file", raw)
            reason = stale_reason(other, self.host, time.time(), self.stale_after_s)
            if reason is None:
                raise RunLockedError(
                    f"output {self.output} is in use by another fi-spark run: {other.describe()}. Wait for it to "
                    f"finish or use another --output; if that run is gone, delete {self.path}"
                )
            if self._store.take_over(other, text):
                log.warning("run lock %s: taking over a stale lock (%s; %s)", self.path, reason, other.describe())
                break
        else:
            raise RunLockedError(f"output {self.output}: could not take the run lock {self.path}; try again")
        self.info = mine
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="fi-spark-run-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.heartbeat()

    def heartbeat(self) -> None:
        """Refresh the heartbeat, if the lock is still ours (else say once that it was taken)."""
        if self.info is None:
            return
        try:
            current = LockInfo.parse(self._store.read() or "")
            if current is None or current.token != self.info.token:
                holder = current.describe() if current else "nobody"
                log.warning("run lock %s is no longer this run's (now: %s)", self.path, holder)
                self.info = None
                return
            self.info = LockInfo(**{**asdict(self.info), "heartbeat": time.time()})
            self._store.replace(self._text(self.info))
        except OSError as exc:  # a full disk or an S3 hiccup must not kill the run; the next beat retries
            log.warning("run lock %s: heartbeat failed: %s", self.path, exc)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.info is None or self._store is None:
            return
        current = LockInfo.parse(self._store.read() or "")
        if current is not None and current.token == self.info.token:
            self._store.delete()
        self.info = None

    def __enter__(self) -> RunLock:  # noqa: PYI034 - typing.Self needs 3.11, we support 3.10
        return self.acquire()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
