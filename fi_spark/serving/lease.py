"""The users' side of the shared local server (one per port): its spec, the leases and state files in its
run folder, health checks, and acquire / release / heal / stop. The supervisor process that owns the server
is fi_spark.serving.supervise; this module only starts it (`python -m fi_spark.serving.supervise`) and talks to it
through these files.

It knows nothing about vLLM: a `ServerSpec` names a command that serves an OpenAI-compatible API with
`/health` and `/v1/models` (fi_spark.serving.local builds the vLLM one; the tests use a tiny script).

- `lock`: flock held while a process decides to start, heal or stop the server (start-up included, so a
  second process waits, then finds it ready);
- `state.json`: written only by the supervisor (atomic rename): its pid and start time, the server's pid,
  `status` (starting | ready | restarting | stopping | stopped | failed), `generation` (restarts so far),
  the last `incident`;
- `users/<pid>`: one lease per process using the server, holding that process's start time (from /proc),
  so a reused pid is not taken for a live user; the lease of a process that died without releasing it
  (SIGKILL) is ignored and removed;
- `heal.json`: a restart request `{generation, reason}` from a user; the supervisor acts on it only while
  the generation still matches, so many users that see the same incident cause one restart;
- `spec.json`, `supervisor.log`, `server.log` (the server's own output).

Leases rather than a plain refcount of users: the server never stops while a live process uses it, however
long that process goes without a request (a long embedding stage between two LLM stages). A process that
did not start the supervisor never stops it: users only add and remove their own lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fi_spark.procs import pid_alive, proc_start_time
from fi_spark.serving import probe

log = logging.getLogger(__name__)

RESTART_WINDOW_S = 600.0  # more than `max_restarts` restarts in this window: give up (a crash loop)


class LocalServerError(RuntimeError):
    """The local server could not be installed, started or healed; the message says which step and why."""


@dataclass(frozen=True)
class ServerSpec:
    """What the supervisor runs and how it judges the server's health (JSON-serializable)."""

    name: str  # for log lines, e.g. "vLLM (smollm2-135m-instruct)"
    cmd: list[str]
    host: str
    port: int
    model: str  # the id /v1/models must list
    run_dir: str
    env: dict[str, str] = field(default_factory=dict)  # added to the supervisor's environment
    startup_timeout_s: float = 600.0
    idle_timeout_s: float = 900.0
    health_interval_s: float = 10.0
    health_failures: int = 3  # consecutive /health failures that count as a wedged server
    max_restarts: int = 3  # per RESTART_WINDOW_S
    probe_timeout_s: float = 60.0  # the one-token completion heal() sends: a busy CPU server is slow

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server's root (where /health is), without the /v1 of its API."""
        return f"http://{self.host}:{self.port}"

    @property
    def root(self) -> Path:
        return Path(self.run_dir)


@dataclass(frozen=True)
class Handle:
    """A server a process uses: `managed` = run by a supervisor (else found running: never stopped by us)."""

    url: str
    managed: bool
    started: bool  # this call spawned the supervisor


# --------------------------------------------------------------------------- leases, state
def add_lease(root: Path, pid: int | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    (root / "users").mkdir(parents=True, exist_ok=True)
    (root / "users" / str(pid)).write_text(proc_start_time(pid) or "")


def remove_lease(root: Path, pid: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / "users" / str(os.getpid() if pid is None else pid)).unlink()


def live_users(root: Path) -> list[int]:
    """Pids holding a lease whose process still runs, ascending; the leases of dead processes are removed."""
    users = []
    for lease in (root / "users").glob("*") if (root / "users").is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            pid = int(lease.name)
            if pid_alive(pid, lease.read_text() or None):
                users.append(pid)
            else:
                lease.unlink()
    return sorted(users)  # by number: file names sort "4078" before "616"


def read_state(root: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def supervisor_alive(state: dict[str, Any] | None) -> bool:
    if not state or "supervisor_pid" not in state:
        return False
    return pid_alive(int(state["supervisor_pid"]), state.get("supervisor_start"))


def write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


@contextlib.contextmanager
def locked(root: Path, why: str = "", name: str = "lock") -> Iterator[None]:
    """An exclusive lock file in `root` (across processes); says so once when another process holds it."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("local server: another process holds %s; waiting%s", root / name, f" ({why})" if why else "")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------- health
def is_serving(spec: ServerSpec, timeout: float = 2.0) -> bool:
    """True when host:port answers /v1/models and lists the spec's model."""
    return probe.is_serving(spec.url, spec.model, timeout)


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def health_problem(spec: ServerSpec) -> str | None:
    """None when /health answers 200 and a one-token completion succeeds; else what failed, in words."""
    return probe.health_problem(spec.root_url, spec.url, spec.model, spec.probe_timeout_s)


# --------------------------------------------------------------------------- the users' side
def acquire(spec: ServerSpec, progress: logging.Logger = log) -> Handle:
    """Lease the spec's server for this process, starting its supervisor if none runs; wait until it serves."""
    root = spec.root
    with locked(root, "start"):
        add_lease(root)
        state = read_state(root)
        if supervisor_alive(state):
            assert state is not None
            if state.get("model") != spec.model:
                raise LocalServerError(
                    f"port {spec.port} is served by a supervised server for model {state.get('model')!r}, not "
                    f"{spec.model!r}; choose another llm.local.port"
                )
            if state.get("status") not in ("stopping", "stopped", "failed"):
                _wait_ready(spec, -1, progress)
                return Handle(spec.url, managed=True, started=False)
            wait_exit(state)
        orphan = _orphan(state)
        if orphan is not None and is_serving(spec):  # its supervisor was killed: a new one adopts the server
            progress.info("local server: adopting %s (pid %d) whose supervisor is gone", spec.name, orphan)
            _spawn(spec, adopt=orphan)
            _wait_ready(spec, -1, progress)
            return Handle(spec.url, managed=True, started=True)
        if is_serving(spec):  # started by something else (an older fi-spark, a terminal): use, never stop
            progress.info("local server: reusing %s at %s (not supervised by fi-spark)", spec.name, spec.url)
            return Handle(spec.url, managed=False, started=False)
        if port_open(spec.host, spec.port):
            remove_lease(root)
            raise LocalServerError(
                f"port {spec.port} on {spec.host} is in use by a program that does not serve {spec.model!r}; "
                "choose another llm.local.port"
            )
        _spawn(spec)
        _wait_ready(spec, -1, progress)
        return Handle(spec.url, managed=True, started=True)


def release(spec: ServerSpec) -> None:
    """Drop this process's lease; the supervisor stops the server `idle_timeout_s` after the last one."""
    remove_lease(spec.root)


def heal(spec: ServerSpec, reason: str, progress: logging.Logger = log) -> bool:
    """Make the server answer again; True when it does. Restarts it at most once per incident.

    Called by a user that saw requests fail (`reason` says how many and with what). A healthy probe means
    nothing to restart (the caller may simply retry). Otherwise, under the lock: if another user has
    restarted it meanwhile, the probe now passes and that is all; a supervised server gets one restart
    request for its current generation; a dead supervisor is replaced; a server fi-spark did not start is
    reported, never touched.
    """
    if health_problem(spec) is None:
        return True
    root = spec.root
    with locked(root, "heal"):
        problem = health_problem(spec)
        if problem is None:
            return True
        state = read_state(root)
        if not supervisor_alive(state):
            if port_open(spec.host, spec.port):
                progress.warning(
                    "local server at %s is failing (%s; %s) but was not started by fi-spark: restart it yourself",
                    spec.url, reason, problem,
                )  # fmt: skip
                return False
            progress.warning("local server at %s is down (%s; %s): starting it again", spec.url, reason, problem)
            add_lease(root)
            _spawn(spec)
            _wait_ready(spec, -1, progress)
            return True
        assert state is not None
        generation = int(state["generation"])
        progress.warning(
            "local server %s is unhealthy (%s; %s): restarting it (restart %d, log: %s)",
            spec.name, reason, problem, generation + 1, root / "server.log",
        )  # fmt: skip
        write_json(root / "heal.json", {"generation": generation, "reason": f"{reason}; {problem}"})
        try:
            _wait_ready(spec, generation, progress)
        except LocalServerError as exc:
            progress.warning("local server: the restart failed: %s", exc)
            return False
        return True


def stop(spec: ServerSpec, progress: logging.Logger = log, force: bool = False) -> bool:
    """Stop the supervised server now (`fi-spark serve-llm --stop`, or the foreground serve-llm that started it).

    Refuses while another live process holds a lease, unless `force`. Never stops a server that no
    supervisor runs. Returns True when a server was stopped.
    """
    root = spec.root
    with locked(root, "stop"):
        state = read_state(root)
        if not supervisor_alive(state):
            return False
        assert state is not None
        others = [pid for pid in live_users(root) if pid != os.getpid()]
        if others and not force:
            progress.info("local server: still used by pid(s) %s; left running", ", ".join(map(str, others)))
            return False
        remove_lease(root)
        os.kill(int(state["supervisor_pid"]), signal.SIGTERM)
        wait_exit(state)
    progress.info("local server %s at %s stopped", spec.name, spec.url)
    return True


def _orphan(state: dict[str, Any] | None) -> int | None:
    """The pid of a server a dead supervisor left running (it runs in its own session), if any."""
    if not state or supervisor_alive(state) or not state.get("server_pid"):
        return None
    pid = int(state["server_pid"])
    return pid if pid_alive(pid, state.get("server_start")) else None


def _spawn(spec: ServerSpec, adopt: int | None = None) -> None:
    root = spec.root
    write_json(root / "spec.json", asdict(spec))
    with contextlib.suppress(FileNotFoundError):
        (root / "heal.json").unlink()
    (root / "state.json").unlink(missing_ok=True)
    with open(root / "supervisor.log", "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "fi_spark.serving.supervise", str(root / "spec.json"),
             *([str(adopt)] if adopt else [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_ready(spec: ServerSpec, after_generation: int, progress: logging.Logger) -> None:
    """Wait until the supervisor reports `ready` at a generation above `after_generation` and it serves."""
    root = spec.root
    t0 = time.monotonic()
    next_note = t0 + 10
    seen_state = False
    while True:
        state = read_state(root)
        seen_state = seen_state or state is not None
        now = time.monotonic()
        if state is not None and state.get("status") == "ready" and int(state["generation"]) > after_generation:
            if is_serving(spec):
                if now - t0 > 1:
                    progress.info("local server %s ready in %.0f s", spec.name, now - t0)
                return
        elif state is not None and state.get("status") == "failed":
            raise LocalServerError(f"{spec.name}: {state.get('error')}\n{tail(root / 'server.log')}")
        if (state is None and seen_state) or (state is not None and not supervisor_alive(state)):
            raise LocalServerError(
                f"{spec.name}: its supervisor exited ({(state or {}).get('error', 'no state')}):\n"
                f"{tail(root / 'supervisor.log', 10)}\n{tail(root / 'server.log')}"
            )
        if state is None and now - t0 > 60:
            raise LocalServerError(f"{spec.name}: the supervisor did not start:\n{tail(root / 'supervisor.log')}")
        if now - t0 > 3 * spec.startup_timeout_s + 60:
            raise LocalServerError(f"{spec.name} not ready after {now - t0:.0f} s:\n{tail(root / 'server.log')}")
        if now >= next_note:
            status = (state or {}).get("status", "starting")
            progress.info("waiting for %s (%s, %.0f s): %s", spec.name, status, now - t0, tail(root / "server.log", 1))
            next_note = now + 10
        time.sleep(0.3)


def wait_exit(state: dict[str, Any], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while supervisor_alive(state) and time.monotonic() < deadline:
        time.sleep(0.2)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
