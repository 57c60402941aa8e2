"""The supervisor of the shared local server: one detached process per port that starts the server, restarts
it when it dies or wedges, and stops it when nobody has used it for a while (`python -m fi_spark.serving.supervise
spec.json [adopted-pid]`, spawned by fi_spark.serving.lease.acquire). It is the only writer of `state.json`; the
files it shares with the server's users are described in fi_spark.serving.lease.

Why a detached supervisor with leases and an idle timeout rather than a plain refcount of users:
- detached (its own session): Ctrl-C or SIGKILL of the process that started it does not reach it, and it can
  restart a dead engine whichever user saw the failure (with a refcount, the starter owns the child);
- leases: it never stops while a live process uses it, however long that process goes without a request
  (a long embedding stage between two LLM stages);
- idle timeout (`idle_timeout_s` after the last lease went away): the next command on the machine finds the
  server warm instead of paying its start-up (minutes on 2 busy cores) again; `idle_timeout_s=0` gives the
  refcount behaviour (stop as soon as the last user leaves).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fi_spark.procs import pid_alive, proc_start_time
from fi_spark.serving.lease import RESTART_WINDOW_S, ServerSpec, is_serving, live_users, write_json
from fi_spark.serving.probe import health_ok

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the supervisor process
class Supervisor:
    """Runs in its own session (`python -m fi_spark.serving.supervise spec.json`); the only writer of state.json."""

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
        write_json(self.root / "state.json", self.state)

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
        return health_ok(self.spec.root_url)

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
