"""Running a measured child process -- a peer tool (DataTrove) or fi-spark in a process of its own -- with a deadline.

A peer that fails or hangs is a result, never a crash of the bench: `run_peer` always returns a `PeerRun`,
whose `status` is "ok", "failed" (it exited non-zero or printed no result) or "hung" (it ran past `timeout_s`
and was ended). The bench prints `run.row()` ("datatrove: hung > 120 s (no figure)") in place of the peer's
figures and still prints everyone else's.

The child runs in a session of its own, with stdout and stderr going to files: a tool whose workers outlive it
(DataTrove's forkserver processes) cannot hold a pipe open, and the whole session is ended once the child has
exited or timed out. Its result is the last line of stdout that starts with `{` (one JSON object). With
`sample_memory`, the peak of the summed resident memory of the child and all its descendants is sampled from
/proc every 0.2 s (`peak_tree_mib`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness.measure import tree_rss_kib


@dataclass
class PeerRun:
    name: str
    status: str  # ok | failed | hung
    seconds: float  # wall seconds until it exited or was ended
    timeout_s: float
    returncode: int | None  # None: ended at the deadline
    stdout: str
    stderr: str
    result: dict[str, Any] | None  # the last JSON object line of stdout
    peak_tree_mib: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> str:
        """One line for a table in place of the peer's figures (its status, and why when it failed)."""
        if self.status == "hung":
            return f"{self.name}: hung > {self.timeout_s:g} s (no figure)"
        if self.status == "failed":
            tail = next((ln.strip() for ln in reversed(self.stderr.splitlines()) if ln.strip()), "")
            rc = "no result" if self.returncode == 0 else f"rc {self.returncode}"
            return f"{self.name}: failed ({rc}{': ' + tail[:160] if tail else ''}) (no figure)"
        return f"{self.name}: ok in {self.seconds:.1f} s"


def run_peer(
    name: str,
    cmd: Sequence[str],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    sample_memory: bool = False,
    echo: bool = False,
) -> PeerRun:
    """Run `cmd` until it exits or `timeout_s` passes; never raises for the child's failure or hang. With `echo`
    the child writes to this process's stdout and stderr (a long run's progress; it then has no `result`, and
    exiting 0 is success)."""
    with tempfile.TemporaryDirectory(prefix=f"peer-{name}-") as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        peak = 0
        stop = threading.Event()
        started = time.monotonic()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            try:
                proc = subprocess.Popen(list(cmd), stdout=None if echo else out, stderr=None if echo else err, env=env,
                                        cwd=cwd, start_new_session=True)  # fmt: skip
            except OSError as exc:
                return PeerRun(name, "failed", 0.0, timeout_s, None, "", str(exc), None)

            def sample() -> None:
                nonlocal peak
                while not stop.wait(0.2):
                    peak = max(peak, tree_rss_kib(proc.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            if sample_memory:
                sampler.start()
            try:
                returncode: int | None = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                returncode = None
            finally:
                stop.set()
                if sample_memory:
                    sampler.join()
                end_session(proc)
        seconds = time.monotonic() - started
        stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    result = last_json(stdout)
    done = returncode == 0 and (result is not None or echo)
    status = "hung" if returncode is None else ("ok" if done else "failed")
    return PeerRun(name, status, seconds, timeout_s, returncode, stdout, stderr, result, peak / 1024)


def end_session(proc: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    """SIGTERM to the child's whole session, SIGKILL to what is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            if sig == signal.SIGTERM:  # the child is gone; its workers got the same SIGTERM
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
