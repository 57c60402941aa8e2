"""One tracking-URI resolution (fi_spark.run.tracking_store): throwaway stores refused in one sentence, the default
store inside a local output, and artifact paths that follow the run folder when it moves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fi_spark.config import ConfigError, load_config
from fi_spark.run.tracking import Tracker
from fi_spark.run.tracking_store import local_store_path, resolve_tracking_uri


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def resolve(output: str, *overrides: str, reading: bool = False) -> tuple[str, str | None]:
    return resolve_tracking_uri(load_config("local", list(overrides)), output, reading=reading)


def test_remote_output_without_a_uri_is_refused_in_one_sentence() -> None:
    """An s3:// run with no URI would track into the container's working directory: refused, naming the fix."""
    with pytest.raises(ConfigError) as err:
        resolve("s3://bucket/run1")
    message = str(err.value)
    assert message.startswith("--output s3://bucket/run1 is remote and no MLflow tracking URI is set")
    assert "set tracking.uri (or MLFLOW_TRACKING_URI)" in message and "\n" not in message


@pytest.mark.parametrize(
    ("uri", "mode", "refused"),
    [
        ("sqlite:///mlflow.db", "embedded", "is a relative path"),  # lands in the working directory
        ("mlruns", "embedded", "is a relative path"),
        ("file:./mlruns", "embedded", "is a relative path"),
        ("sqlite:////tmp/fi/mlflow.db", "cluster", "on the driver's local disk"),
        ("sqlite:////tmp/fi/mlflow.db", "embedded", None),  # a laptop writing to s3 keeps its own disk
        ("sqlite:////dbfs/fi/mlflow.db", "cluster", None),
        ("databricks", "cluster", None),
        ("http://mlflow.internal:5000", "cluster", None),
    ],
)
def test_a_store_the_job_would_delete_is_refused(uri: str, mode: str, refused: str | None) -> None:
    """With a remote output, relative stores and (on a cluster) the driver's disk are refused; servers are fine."""
    if refused is None:
        assert resolve("dbfs:/runs/r1", f"tracking.uri={uri}", f"engine.mode={mode}") == (uri, None)
        return
    with pytest.raises(ConfigError, match=refused):
        resolve("dbfs:/runs/r1", f"tracking.uri={uri}", f"engine.mode={mode}")


def test_the_environment_is_checked_like_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLFLOW_TRACKING_URI wins over tracking.uri, and is refused by the same rule, naming itself."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert resolve("out", "tracking.uri=databricks")[0] == "sqlite:///mlflow.db"
    with pytest.raises(ConfigError, match=r"^MLFLOW_TRACKING_URI=sqlite:///mlflow.db is a relative path"):
        resolve("s3://b/r", "tracking.uri=databricks")


def test_local_output_defaults_to_its_own_store(tmp_path: Path) -> None:
    """A local run tracks into <output>/mlflow.db with artifacts beside it; a reader needs that file to exist."""
    out = tmp_path / "run"
    assert resolve(str(out)) == (f"sqlite:///{out}/mlflow.db", f"file://{out}/mlartifacts")
    with pytest.raises(ConfigError, match=r"^no MLflow store at .*/run/mlflow.db"):
        resolve(str(out), reading=True)
    with pytest.raises(ConfigError, match="remote: read its runs from the store they were tracked to"):
        resolve("s3://b/r", reading=True)


def test_databricks_volume_output_needs_a_uri_on_a_cluster() -> None:
    """SQLite cannot keep a store on a Unity Catalog volume: a cluster run there must name a store."""
    with pytest.raises(ConfigError, match="is a Databricks volume"):
        resolve("/Volumes/main/fi/runs/r1", "engine.mode=cluster")


def test_local_store_paths() -> None:
    """sqlite:////abs is absolute, sqlite:///rel relative, servers have no path."""
    assert [local_store_path(u) for u in ("sqlite:////a/m.db", "sqlite:///m.db", "file:///a/r", "r", "databricks")] == [
        "/a/m.db", "m.db", "/a/r", "r", None,
    ]  # fmt: skip


def test_artifacts_follow_a_moved_run_folder(tmp_path: Path) -> None:
    """A run folder moved elsewhere: opening its store there re-points the artifact paths, and they download."""
    first = tmp_path / "first"
    tracker = Tracker(load_config("local"), str(first))
    with tracker.run("pipeline") as run_id:
        pass
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))

    Tracker(load_config("local"), str(moved))  # opening it is enough
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{moved}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.artifact_uri == f"file://{moved}/mlartifacts/{run_id}/artifacts"
    assert client.get_experiment(run.info.experiment_id).artifact_location == f"file://{moved}/mlartifacts"
    local = client.download_artifacts(run_id, "config.yaml", str(tmp_path))
    assert "experiment: fi-spark" in Path(local).read_text(encoding="utf-8")
