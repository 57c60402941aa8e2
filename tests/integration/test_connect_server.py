"""The whole pipeline in `connect` mode against a Sail Spark Connect server running as its own process.

This is how a remote Connect server is used (Databricks Connect, a shared Spark Connect or Sail server):
the client holds no workers, the server runs the Python UDFs in *its* process (so it must import fi_spark:
it is started with this interpreter and PYTHONPATH), and the index strategy is chosen by probing the
server (Sail refuses spark.addArtifacts), with default index settings. The LLM stages talk to the
fault-injecting test server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from submit_inputs import head, stage_lines

from fi_spark_testkit.fault_server import FaultServer, ServerSettings
from tests.conftest import REPO

SAMPLE = REPO / "fi_spark" / "resources" / "sample"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {seconds}s")


@pytest.fixture(scope="module")
def sail_server(tmp_path_factory) -> Iterator[str]:
    """A Sail Spark Connect server in a separate process that can import fi_spark (same venv + PYTHONPATH)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("sail") / "sail.log").open("w")
    code = (
        "from pysail.spark import SparkConnectServer; "
        f"s = SparkConnectServer('127.0.0.1', {port}); s.start(background=False)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        wait_for_port(port, proc)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes when idle, far more on a loaded 2-core machine
def test_pipeline_on_a_separate_sail_server(sail_server: str, tmp_path: Path) -> None:
    """Default index settings work on a Connect server without addArtifacts: probed, then the shared path."""
    docs = head(SAMPLE / "documents.jsonl", tmp_path / "docs.jsonl", 12)
    queries = head(SAMPLE / "queries.jsonl", tmp_path / "queries.jsonl", 12)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    with FaultServer(ServerSettings(latency_ms=(1, 5))) as llm:
        out = subprocess.run(
            [sys.executable, "-m", "fi_spark.cli", "pipeline", "--engine", "connect"]
            + ["--documents", str(docs), "--queries", str(queries), "--output", str(tmp_path / "run")]
            + ["--set", f"engine.connect_url={sail_server}", "--set", f"llm.endpoints=[{llm.url}]"]
            + ["--set", "llm.model=test-model", "--set", "match.min_score=-1.0"]  # every document matches
            + ["--set", "match.token_budget=null"]  # and none is held back by the pre-instantiation budget
            + [
                "--set",
                "instantiate.prompt=instantiate.v1",
                "--set",
                "judge.prompt=judge.v2",
                "--set",
                "templates.prompt=genericize.v1",
                "--set",
                "templates.extractive_only=false",
            ],  # as submit_inputs
            capture_output=True,
            text=True,
            timeout=1500,
            env=env,
            cwd=REPO,
        )
        stats = llm.snapshot()
    assert out.returncode == 0, out.stderr[-4000:]
    log = out.stderr
    assert "does not take spark.addArtifacts" in log
    assert "engine connect ready (Spark 4.0.1, delta=True, sparkContext=False, artifacts=False)" in log
    assert "(Flat, via path)" in log
    lines = stage_lines(log)
    assert lines["prepare_corpus"].startswith("prepare_corpus: in=12 out=12 rejected=0")
    assert lines["ingest_queries"].startswith("ingest_queries: in=12 out=12 rejected=0")
    assert lines["genericize"].startswith("genericize: in=12 out=12 rejected=0")
    assert lines["match"].startswith("match: in=12 out=12 rejected=0")
    assert lines["instantiate"].startswith("instantiate: in=12 ")  # the test server's answers are not grounded
    assert {"judge", "export", "report"} <= set(lines)
    assert (stats["requests"], stats["ok"]) == (24, 24)  # 12 genericize + 12 instantiate, no faults, no repeats

    import deltalake

    tables = tmp_path / "run" / "tables"
    matches = deltalake.DeltaTable(str(tables / "matches")).to_pandas()
    assert len(matches) == 12 and matches["doc_id"].nunique() == 12  # one template in the bank: one match each
    assert (tmp_path / "run" / "report" / "report.html").is_file()
