"""The user-facing entry points: `fi-spark` commands, clear errors, MLflow runs, spark-submit."""

from __future__ import annotations

import os
import subprocess
import sys

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
    """`fi-spark show-config` prints every key of the local profile as YAML; near-duplicate removal is on."""
    out = run_cli("show-config")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[lines.index("near_dedup:") + 1].startswith("  enabled: true  # on, as ")
    assert "  sample_queries: 240" in out.stdout and "  gopher_min_words: 50" in out.stdout


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The `fi-spark: error: ...` line of a run that must have failed cleanly (exit 2, no traceback)."""
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("fi-spark: error: ")]
    assert len(errors) == 1, out.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sc://127.0.0.1:1", "could not reach a Spark Connect server at sc://127.0.0.1:1 (Connection refused)"),
        ("http://127.0.0.1:15002", "engine.connect_url='http://127.0.0.1:15002' is not a Spark Connect URL"),
    ],
)
def test_bad_engine_url_is_one_clear_error(tmp_path, url, expected):
    """An unreachable or malformed connect URL fails at once with what to set (the client would retry for minutes)."""
    out = run_cli(
        "genericize", "--output", str(tmp_path / "o"), "--engine", "connect", "--set", f"engine.connect_url={url}"
    )
    line = one_line_error(out)
    assert expected in line and "engine.connect_url=sc://HOST:PORT" in line


def test_match_on_an_empty_run_is_one_clear_error(tmp_path):
    """match with nothing prepared says which command to run first, in one line."""
    out = run_cli("match", "--output", str(tmp_path / "o"), "--set", "tracking.enabled=false")
    line = one_line_error(out)
    assert line == "fi-spark: error: match needs the `documents` table, which does not exist: run prepare_corpus first"


def test_genericize_before_ingest_queries_is_one_clear_error(tmp_path):
    """The issue's example: a stage whose input table is missing names the stage to run, in one line."""
    base = pytest.importorskip("fi_spark.stages.base")
    if not hasattr(base, "MissingInputError"):
        pytest.skip("needs the stage contract's typed MissingInputError (issue 10)")
    out = run_cli("genericize", "--output", str(tmp_path / "o"), "--set", "tracking.enabled=false")
    line = one_line_error(out)
    assert "genericize needs the `queries` table" in line and "run ingest_queries first" in line


def test_pipeline_twice_mlflow_runs_and_delta_tables(tmp_path):
    """Pipeline on the bundled sample: Delta tables readable by delta-rs, nested MLflow runs, idempotent."""
    out_dir = tmp_path / "run"
    first = run_cli(
        "pipeline", "--only", "prepare_corpus", "--output", str(out_dir), "--set", "prepare.chunk_tokens=128"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "prepare_corpus: in=197 out=197" in first.stderr

    import deltalake

    counts = {t: len(deltalake.DeltaTable(str(out_dir / "tables" / t)).to_pandas()) for t in ("documents", "chunks")}
    assert counts["documents"] == 197 and counts["chunks"] >= 197

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
    assert child.data.metrics["rows_in"] == 197 and child.data.metrics["rows_out"] == 197
    assert "rows_per_s" in child.data.metrics


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes when idle, far more on a loaded 2-core machine
def test_spark_submit_runs_the_whole_pipeline(tmp_path):
    """jobs/pipeline.py under spark-submit local[2] (classic JVM, Parquet tables, index by broadcast), every stage,
    pairs through judge and export (tests/integration/test_spark_versions.py: the same on Spark 3.5)."""
    from submit_inputs import VENV_BIN, submit_local_pipeline

    ours = submit_local_pipeline(VENV_BIN, tmp_path)
    assert "engine cluster ready (Spark 4.0.1, delta=False, sparkContext=True, artifacts=False)" in ours, ours
    assert (tmp_path / "run" / "tables" / "matches").is_dir()


def test_a_remote_output_without_a_tracking_store_is_refused_before_work(tmp_path):
    """An s3:// output with no tracking URI would track into the job's working directory: one line, exit 2, and
    nothing started (no engine, no lock, no MLflow files in the working directory)."""
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"text": "x"}\n', encoding="utf-8")
    out = subprocess.run(
        [*CLI, "prepare-corpus", "--documents", str(docs), "--output", "s3://fi-nowhere/run1"],
        capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(out)
    assert line.startswith("fi-spark: error: --output s3://fi-nowhere/run1 is remote and no MLflow tracking URI is set")
    assert "engine embedded ready" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]
