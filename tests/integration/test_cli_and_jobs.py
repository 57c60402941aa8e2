"""The user-facing entry points: `fi-spark` commands, clear errors, MLflow runs, spark-submit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CLI = [sys.executable, "-m", "fi_spark.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("SPARK_CONNECT_MODE_ENABLED", None)
ENV.pop("MLFLOW_TRACKING_URI", None)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)


def test_help_explains_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("pipeline", "prepare-corpus", "match", "judge", "report", "serve-llm", "show-config", "--set"):
        assert word in out.stdout
    sub = run_cli("prepare-corpus", "--help")
    assert "--documents" in sub.stdout and "doc_rejects" in sub.stdout


def test_unreadable_path_is_one_clear_error(tmp_path):
    out = run_cli("prepare-corpus", "--documents", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o"))
    assert out.returncode == 2
    assert "fi-spark: error: --documents: path not found" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_input_table_is_one_clear_error(tmp_path):
    """A stage run before the stage that writes its input: exit 2 and one sentence naming that stage."""
    out = run_cli("judge", "--output", str(tmp_path / "o"), "--set", "tracking.enabled=false")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "judge needs the `pairs` table, which does not exist: run instantiate first" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_override_is_one_clear_error(tmp_path):
    out = run_cli("show-config", "--set", "prepare.chunk_tokens=lots")
    assert out.returncode == 2 and "prepare.chunk_tokens" in out.stderr and "Traceback" not in out.stderr


def test_show_config_shows_near_dedup_enabled():
    """`fi-spark show-config` prints every key of the local profile; near-duplicate removal is on by default."""
    out = run_cli("show-config")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and "near_dedup.enabled = True" in lines
    assert "templates.sample_queries = 48" in lines and "web.gopher_min_words = 50" in lines


def test_pipeline_twice_mlflow_runs_and_delta_tables(tmp_path):
    """Pipeline on the bundled sample: Delta tables readable by delta-rs, nested MLflow runs, idempotent."""
    out_dir = tmp_path / "run"
    first = run_cli(
        "pipeline", "--only", "prepare_corpus", "--output", str(out_dir), "--set", "prepare.chunk_tokens=128"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "prepare_corpus: in=250 out=250" in first.stderr

    import deltalake

    counts = {t: len(deltalake.DeltaTable(str(out_dir / "tables" / t)).to_pandas()) for t in ("documents", "chunks")}
    assert counts["documents"] == 250 and counts["chunks"] > 250

    second = run_cli(
        "pipeline", "--only", "prepare-corpus", "--output", str(out_dir), "--set", "prepare.chunk_tokens=128"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "table documents: +0 rows" in second.stderr and "table chunks: +0 rows" in second.stderr
    assert {t: len(deltalake.DeltaTable(str(out_dir / "tables" / t)).to_pandas()) for t in counts} == counts

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{out_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["fi-spark"], output_format="list")
    parents = [r for r in runs if r.info.run_name == "pipeline"]
    children = [r for r in runs if r.info.run_name == "prepare_corpus"]
    assert len(parents) == 2 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id for p in parents}
    child = children[0]
    assert child.data.params["prepare.chunk_tokens"] == "128"
    assert child.data.metrics["rows_in"] == 250 and child.data.metrics["rows_out"] == 250
    assert "rows_per_s" in child.data.metrics


@pytest.mark.slow
def test_spark_submit_runs_the_job(tmp_path):
    """jobs/prepare_corpus.py under spark-submit (classic JVM, Parquet tables)."""
    spark_submit = shutil.which("spark-submit", path=str(Path(sys.executable).parent))
    assert spark_submit, "pyspark ships spark-submit next to the interpreter"
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "\n".join(
            json.dumps({"id": f"d{i}", "text": f"Document {i} is about the history of rivers and mountains."})
            for i in range(20)
        )
        + "\n"
        + "{not json\n"
    )
    env = {
        **ENV,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    out = subprocess.run(
        [
            spark_submit,
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            str(REPO / "jobs" / "prepare_corpus.py"),
            "--documents",
            str(docs),
            "--output",
            str(tmp_path / "o"),
            "--set",
            "prepare.min_chars=20",
            "--set",
            "prepare.min_words=5",
            "--set",
            "tracking.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    # spark-submit's Python runner merges the driver's stderr into its stdout
    ours = "\n".join(line for line in (out.stdout + out.stderr).splitlines() if line[:8].count(":") == 2)
    assert out.returncode == 0, ours
    assert "engine cluster ready" in ours, ours
    assert "prepare_corpus: in=21 out=20 rejected=1 (malformed_json=1)" in ours, ours
    assert (tmp_path / "o" / "tables" / "documents").is_dir()
