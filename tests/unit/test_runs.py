"""`fi-spark runs list|compare` on a real local MLflow store written by the Tracker the pipeline uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fi_spark.config import ConfigError, load_config
from fi_spark.run import history as runs
from fi_spark.run.tracking import Tracker
from fi_spark.stages.base import StageResult

REPO = Path(__file__).resolve().parents[2]


def record_pipeline(output: Path, overrides: list[str], results: list[StageResult]) -> str:
    """One pipeline parent run with a nested run per stage result, exactly as fi_spark.run.pipeline logs them."""
    tracker = Tracker(load_config("local", overrides), str(output))
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}) as run_id:
        for result in results:
            with tracker.run(result.stage, nested=True, tags={"fi_spark.stage": result.stage}):
                tracker.log_result(result)
    assert run_id
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory, monkeypatch_module) -> tuple[Path, str, str]:
    output = tmp_path_factory.mktemp("runs")
    a = record_pipeline(
        output,
        ["match.min_score=0.2"],
        [StageResult("match", 10, 8, {"below_min_score": 2}, seconds=2.0), StageResult("judge", 8, 5, {"low": 3})],
    )
    b = record_pipeline(
        output,
        ["match.min_score=0.5"],
        [StageResult("match", 10, 6, {"below_min_score": 4}, seconds=2.0), StageResult("judge", 6, 5, {"low": 1})],
    )
    return output, a, b


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield mp


def uri(output: Path) -> str:
    return f"sqlite:///{output / 'mlflow.db'}"


def test_list_shows_pipeline_runs_newest_first(store) -> None:
    """Both pipeline runs are listed (stage runs are not), newest first, with their stage counts."""
    output, a, b = store
    listed = runs.list_runs(uri(output), "fi-spark")
    assert [r.run_id for r in listed] == [b, a]
    assert [(r.stages, r.rows_out) for r in listed] == [(2, {"match": 6, "judge": 5}), (2, {"match": 8, "judge": 5})]


def test_compare_puts_differences_first_with_both_values(store) -> None:
    """Changed params and metrics lead, side by side; equal keys follow; a prefix names a run."""
    output, a, b = store
    rows = runs.compare_runs(uri(output), "fi-spark", a[:8], b)
    differing = [(r.key, r.a, r.b) for r in rows if r.differs]
    assert differing == [
        ("judge.rejected.low", "3", "1"),
        ("judge.rows_in", "8", "6"),
        ("judge.rows_rejected", "3", "1"),
        ("match.rejected.below_min_score", "2", "4"),
        ("match.rows_out", "8", "6"),
        ("match.rows_rejected", "2", "4"),
        ("param match.min_score", "0.2", "0.5"),
    ]
    assert rows[: len(differing)] == [r for r in rows if r.differs]
    equal = {r.key: r.a for r in rows if not r.differs}
    assert equal["judge.rows_out"] == "5" and equal["match.rows_in"] == "10" and equal["match.seconds"] == "2"
    assert equal["param engine.mode"] == "embedded"


def test_compare_refuses_an_unknown_run(store) -> None:
    """A run id that matches no pipeline run is one clear error naming `runs list`."""
    output, a, _ = store
    with pytest.raises(ConfigError, match="no pipeline run with that id.*fi-spark runs list"):
        runs.compare_runs(uri(output), "fi-spark", a, "ffffffff")


def test_cli_compare_prints_the_table(store) -> None:
    """`fi-spark runs compare A B --output DIR` prints differences first and a count line."""
    output, a, b = store
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "fi_spark.cli", "runs", "compare", a, b, "--output", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[2].split() == ["judge.rejected.low", "3", "1"]
    assert "(equal below)" in out.stdout and lines[-1].startswith("7 of ")
