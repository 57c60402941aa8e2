"""One shared server process per port, supervised: started by whichever process needs it first, used by
many, restarted when it dies or wedges, stopped when nobody has used it for a while.

It knows nothing about vLLM: a `ServerSpec` names a command that serves an OpenAI-compatible API with
`/health` and `/v1/models` (fi_spark.llm.local_server builds the vLLM one; the tests use a tiny script).

Files in the run folder (`ServerSpec.run_dir`, one per port):
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

Why a detached supervisor with leases and an idle timeout rather than a plain refcount of users:
- detached (its own session): Ctrl-C or SIGKILL of the process that started it does not reach it, and it can
  restart a dead engine whichever user saw the failure (with a refcount, the starter owns the child);
- leases: it never stops while a live process uses it, however long that process goes without a request
  (a long embedding stage between two LLM stages);
- idle timeout (`idle_timeout_s` after the last lease went away): the next command on the machine finds the
  server warm instead of paying its start-up (minutes on 2 busy cores) again; `idle_timeout_s=0` gives the
  refcount behaviour (stop as soon as the last user leaves).
A process that did not start the supervisor never stops it: users only add and remove their own lease.
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

import httpx

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
    def root(self) -> Path:
        return Path(self.run_dir)


@dataclass(frozen=True)
class Handle:
    """A server a process uses: `managed` = run by a supervisor (else found running: never stopped by us)."""

    url: str
    managed: bool
    started: bool  # this call spawned the supervisor


# --------------------------------------------------------------------------- pids, leases, state
def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """True when `pid` runs (and, given `start_time`, is the same process that had it then); zombies are dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and (start_time is None or fields[19] == start_time)


def add_lease(root: Path, pid: int | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    (root / "users").mkdir(parents=True, exist_ok=True)
    (root / "users" / str(pid)).write_text(proc_start_time(pid) or "")


def remove_lease(root: Path, pid: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / "users" / str(os.getpid() if pid is None else pid)).unlink()


def live_users(root: Path) -> list[int]:
    """Pids holding a lease whose process still runs; the leases of dead processes are removed."""
    users = []
    for lease in sorted((root / "users").glob("*")) if (root / "users").is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            pid = int(lease.name)
            if pid_alive(pid, lease.read_text() or None):
                users.append(pid)
            else:
                lease.unlink()
    return users


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


def _write_json(path: Path, value: dict[str, Any]) -> None:
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
    try:
        data = httpx.get(spec.url + "/models", timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(data, dict) and any(m.get("id") == spec.model for m in data.get("data", []))


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def probe(spec: ServerSpec) -> str | None:
    """None when /health answers 200 and a one-token completion succeeds; else what failed, in words."""
    base = f"http://{spec.host}:{spec.port}"
    try:
        health = httpx.get(base + "/health", timeout=10.0)
        if health.status_code != 200:
            return f"/health answered HTTP {health.status_code}"
        body = {"model": spec.model, "prompt": "Hi", "max_tokens": 1, "temperature": 0.0}
        done = httpx.post(spec.url + "/completions", json=body, timeout=spec.probe_timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if done.status_code != 200:
        return f"a one-token completion answered HTTP {done.status_code}"
    return None


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
            _wait_exit(state)
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
    if probe(spec) is None:
        return True
    root = spec.root
    with locked(root, "heal"):
        problem = probe(spec)
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
        _write_json(root / "heal.json", {"generation": generation, "reason": f"{reason}; {problem}"})
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
        _wait_exit(state)
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
    _write_json(root / "spec.json", asdict(spec))
    with contextlib.suppress(FileNotFoundError):
        (root / "heal.json").unlink()
    (root / "state.json").unlink(missing_ok=True)
    with open(root / "supervisor.log", "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "fi_spark.llm.supervise", str(root / "spec.json"), *([str(adopt)] if adopt else [])],
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


def _wait_exit(state: dict[str, Any], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while supervisor_alive(state) and time.monotonic() < deadline:
        time.sleep(0.2)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- the supervisor process
class Supervisor:
    """Runs in its own session (`python -m fi_spark.llm.supervise spec.json`); the only writer of state.json."""

    def __init__(self, spec: ServerSpec, adopt: int | None = None) -> None:
        self.spec = spec
        self.root = spec.root
        self.proc: subprocess.Popen[bytes] | None = None
        self.adopted = adopt  # a running server left by a killed supervisor (not our child: polled by pid)
        self.state: dict[str, Any] = {
            "supervisor_pid": os.getpid(), "supervisor_start": proc_start_time(os.getpid()), "server_pid": None,
            "model": spec.model, "url": spec.url, "status": "starting", "generation": 0, "incident": None,
            "error": None, "started_at": time.time(),
        }  # fmt: skip
        self.restarts: list[float] = []
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._save()
        if self.adopted is not None and pid_alive(self.adopted):
            self.state.update(server_pid=self.adopted, server_start=proc_start_time(self.adopted), status="ready")
            self._save()
        elif not self._start():
            return self._fail("did not start: " + (self.state["error"] or "unknown"))
        last_used = time.monotonic()
        last_health = time.monotonic()
        health_failures = 0
        while not self.stopping:
            time.sleep(0.5)
            now = time.monotonic()
            incident = None
            if (exited := self._exited()) is not None:
                incident = f"the server exited ({exited})"
            elif (request := self._heal_request()) is not None:
                incident = request
            elif now - last_health >= self.spec.health_interval_s:
                last_health = now
                health_failures = 0 if self._health_ok() else health_failures + 1
                if health_failures >= self.spec.health_failures:
                    incident = f"/health failed {health_failures} times in a row"
            if incident is not None:
                health_failures = 0
                if not self._restart(incident):
                    return self._fail(f"gave up after {len(self.restarts)} restarts: {incident}")
                last_used = last_health = time.monotonic()
                continue
            if live_users(self.root):
                last_used = now
            elif now - last_used >= self.spec.idle_timeout_s and self._stop_if_idle():
                return 0
        self._shutdown("stopped on request")
        return 0

    def _on_term(self, *_: object) -> None:
        self.stopping = True

    def _save(self) -> None:
        _write_json(self.root / "state.json", self.state)

    def _fail(self, error: str) -> int:
        log.error("%s", error)
        self._kill()
        self.state.update(status="failed", error=error, server_pid=None)
        self._save()
        return 1

    def _start(self) -> bool:
        env = {**os.environ, **self.spec.env}
        with open(self.root / "server.log", "ab") as out:
            self.proc = subprocess.Popen(
                self.spec.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.state.update(server_pid=self.proc.pid, server_start=proc_start_time(self.proc.pid))
        self._save()
        log.info("started %s (pid %d)", self.spec.name, self.proc.pid)
        # a busy machine starts slowly: the timeout counts from the server's last line of output (hard cap 3x)
        log_path = self.root / "server.log"
        hard_stop = time.monotonic() + 3 * self.spec.startup_timeout_s
        deadline, size = time.monotonic() + self.spec.startup_timeout_s, -1
        while time.monotonic() < min(deadline, hard_stop) and not self.stopping:
            with contextlib.suppress(OSError):
                if log_path.stat().st_size != size:
                    size, deadline = log_path.stat().st_size, time.monotonic() + self.spec.startup_timeout_s
            if self.proc.poll() is not None:
                self.state["error"] = f"the server exited with code {self.proc.returncode} while starting"
                return False
            if is_serving(self.spec):
                self.state.update(status="ready", error=None)
                self._save()
                log.info("%s ready (generation %d)", self.spec.name, self.state["generation"])
                return True
            time.sleep(0.5)
        self.state["error"] = f"not ready, and silent for {self.spec.startup_timeout_s:.0f} s (or 3x that in all)"
        return False

    def _restart(self, incident: str) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > self.spec.max_restarts:
            return False
        log.warning("restarting %s: %s", self.spec.name, incident)
        self.state.update(status="restarting", generation=self.state["generation"] + 1, incident=incident)
        self._save()
        self._kill()
        return self._start()

    def _heal_request(self) -> str | None:
        path = self.root / "heal.json"
        try:
            request = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        path.unlink(missing_ok=True)
        if int(request.get("generation", -1)) != self.state["generation"]:
            return None  # about an incident an earlier restart already handled
        return f"a user asked: {request.get('reason')}"

    def _health_ok(self) -> bool:
        try:
            return httpx.get(f"http://{self.spec.host}:{self.spec.port}/health", timeout=10.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _stop_if_idle(self) -> bool:
        """Stop when still idle under the lock (an arriving user holds it while it checks the state)."""
        with open(self.root / "lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # someone is acquiring: look again next time
            if live_users(self.root):
                return False
            self._shutdown(f"idle for {self.spec.idle_timeout_s:.0f} s with no users")
            return True  # state.json says stopped before the lock is released

    def _shutdown(self, why: str) -> None:
        log.info("stopping %s: %s", self.spec.name, why)
        self.state.update(status="stopping")
        self._save()
        self._kill()
        self.state.update(status="stopped", server_pid=None, incident=why)
        self._save()

    def _exited(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"code {self.proc.returncode}"
        if self.proc is None and self.adopted is not None and not pid_alive(self.adopted):
            return "the adopted server is gone"
        return None

    def _kill(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the server's own process group (vLLM runs an engine child), SIGKILL after `grace_s`."""
        adopted, self.adopted = self.adopted, None
        if adopted is not None and pid_alive(adopted):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(adopted, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while pid_alive(adopted) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(adopted, signal.SIGKILL)
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = ServerSpec(**json.loads(Path(args[0]).read_text()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor: %(message)s")
    return Supervisor(spec, adopt=int(args[1]) if len(args) > 1 else None).run()


if __name__ == "__main__":
    sys.exit(main())
