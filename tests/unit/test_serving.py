"""The LLM layer's seams: the client apart from the servers, one interface, one HTTP library, one place that probes,
and the fault-injecting server outside the wheel."""

from __future__ import annotations

import ast
import logging
import re
import runpy
import socket
from pathlib import Path
from typing import Any

import pytest
import setuptools

from fi_spark.config.llm import LLMConfig, LocalLLMServerConfig
from fi_spark.serving import InferenceServer, LocalVLLM, RemoteEndpoints, server_for
from fi_spark_testkit.fault_server import FaultServer, ServerSettings

REPO = Path(__file__).resolve().parents[2]
PROBE_URL = re.compile(r"^(https?://\S*)?/(v1/)?(models|health)$")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_client_imports_nothing_of_the_servers_but_their_interface() -> None:
    """fi_spark/llm/ names fi_spark.serving only for the InferenceServer type, and never the test kit."""
    for path in sorted((REPO / "fi_spark" / "llm").glob("*.py")):
        for name in _imports(path):
            assert not name.startswith("fi_spark_testkit"), (path.name, name)
            if name.startswith("fi_spark.serving"):
                assert name.startswith("fi_spark.serving.base"), (path.name, name)


def test_fi_spark_speaks_http_through_aiohttp_only() -> None:
    """No fi_spark module imports httpx, requests or urllib's client: aiohttp is the one HTTP library."""
    for path in sorted((REPO / "fi_spark").rglob("*.py")):
        found = {n for n in _imports(path) if n.split(".")[0] in ("httpx", "requests") or n == "urllib.request"}
        assert not found, (str(path.relative_to(REPO)), found)


def test_only_the_probe_module_calls_models_and_health() -> None:
    """`/models` and `/health` URLs are spelled in fi_spark/serving/probe.py and nowhere else in fi_spark."""
    spelled = set()
    for path in sorted((REPO / "fi_spark").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PROBE_URL.match(node.value):
                spelled.add(str(path.relative_to(REPO)))
    assert spelled == {"fi_spark/serving/probe.py"}


def test_the_wheel_lists_fi_spark_packages_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """setup.py's packages (what the wheel and an install hold) are fi_spark.*: the test kit and its fault server
    stay in the repository."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    packages = seen["packages"]
    assert "fi_spark" in packages and "fi_spark.serving" in packages and "fi_spark.llm" in packages
    assert all(p == "fi_spark" or p.startswith("fi_spark.") for p in packages), packages
    assert (REPO / "fi_spark_testkit" / "fault_server.py").is_file()  # it exists, and is not listed above


def test_every_server_kind_speaks_the_interface(tmp_path: Path) -> None:
    """The configured endpoints, the local vLLM server and the fault server are all InferenceServers."""
    remote = server_for(LLMConfig(endpoints=["http://127.0.0.1:9/v1"], model="m"))
    local = server_for(LLMConfig(endpoints=[], local=LocalLLMServerConfig(cache_dir=str(tmp_path))))
    assert isinstance(remote, RemoteEndpoints) and isinstance(local, LocalVLLM)
    assert local.model == "smollm2-135m-instruct" and local.capacity == 32 and remote.capacity is None
    for server in (remote, local, FaultServer()):
        assert isinstance(server, InferenceServer)


def test_remote_model_is_asked_once_and_heal_never_asks_for_a_resend(caplog: pytest.LogCaptureFixture) -> None:
    """An empty llm.model is the first model /models lists (kept); heal() re-probes, names a dead endpoint and
    returns False (nothing was restarted)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with FaultServer(ServerSettings(model="served")) as srv:
        remote = RemoteEndpoints(LLMConfig(endpoints=[srv.url, dead], connect_timeout_s=2))
        assert remote.endpoints() == [srv.url, dead]
        assert remote.model == "served" and remote.model == "served"
        with caplog.at_level(logging.WARNING, logger="t"):
            assert remote.heal("judge: 3 requests failed", logging.getLogger("t")) is False
    assert [r.getMessage() for r in caplog.records] == [
        f"llm endpoint {dead} does not answer (judge: 3 requests failed; connection refused)"
    ]


def test_the_fault_server_heals_as_told() -> None:
    """The fault server records each heal() reason and answers what the test set."""
    srv = FaultServer(heal_answer=True)
    assert srv.heal("x: 2 requests failed") is True and srv.heals == ["x: 2 requests failed"]
    assert srv.model == "test-model" and srv.endpoints() == [srv.url]
