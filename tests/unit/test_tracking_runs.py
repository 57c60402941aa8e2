"""MLflow runs that survive a cluster job (fi_spark.run.tracking): one parent per run group across separate stage
processes, a SIGKILLed run marked KILLED by the next one, dataset inputs and the answering models logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fi_spark.config import load_config
from fi_spark.run import history as runs
from fi_spark.run.lock import RunLock
from fi_spark.run.tracking import DatasetRef, Tracker
from fi_spark.stages.base import StageResult

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def client(output: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{output}/mlflow.db")


def stage_task(output: Path, group: str, result: StageResult) -> str:
    """One task of a per-stage job: its own lock and Tracker, its stage run under the group's parent."""
    output.mkdir(exist_ok=True)
    with RunLock(str(output)) as lock:
        tracker = Tracker(load_config("local", [f"tracking.run_group={group}"]), str(output), lock.info)
        with tracker.run(result.stage, nested=True, tags={"fi_spark.stage": result.stage}) as run_id:
            tracker.log_result(result)
    assert run_id
    return run_id


def test_stage_tasks_of_one_group_share_one_parent(tmp_path: Path) -> None:
    """Two tasks of job run 4711 nest under one FINISHED pipeline run; another group gets its own parent."""
    out = tmp_path / "run"
    a = stage_task(out, "4711", StageResult("prepare_corpus", 4, 3, {"too_short": 1}))
    b = stage_task(out, "4711", StageResult("match", 3, 3))
    c = stage_task(out, "4712", StageResult("prepare_corpus", 4, 4))
    mlflow = client(out)
    parents = {r: mlflow.get_run(r).data.tags["mlflow.parentRunId"] for r in (a, b, c)}
    assert parents[a] == parents[b] != parents[c]
    parent = mlflow.get_run(parents[a])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "pipeline"
    assert parent.data.tags["fi_spark.run_group"] == "4711" and parent.data.tags["fi_spark.stage"] == "pipeline"
    assert parent.data.params["tracking.run_group"] == "4711"  # the config, as on a pipeline run
    listed = runs.list_runs(f"sqlite:///{out}/mlflow.db", "fi-spark")
    assert sorted((r.stages, r.rows_out) for r in listed) == [
        (1, {"prepare_corpus": 4}),
        (2, {"prepare_corpus": 3, "match": 3}),
    ]


def test_a_parent_run_id_nests_stage_runs_under_it(tmp_path: Path) -> None:
    """tracking.parent_run_id: the stage run nests under that run; an unknown id is one clear error."""
    out = tmp_path / "run"
    tracker = Tracker(load_config("local"), str(out))
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}) as parent:
        pass
    nested = Tracker(load_config("local", [f"tracking.parent_run_id={parent}"]), str(out))
    with nested.run("judge", nested=True) as child:
        pass
    assert client(out).get_run(str(child)).data.tags["mlflow.parentRunId"] == parent
    missing = Tracker(load_config("local", ["tracking.parent_run_id=" + "f" * 32]), str(out))
    with pytest.raises(ValueError, match=r"tracking.parent_run_id=f{32}: no such run in sqlite:///"):
        with missing.run("judge", nested=True):
            pass


KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from fi_spark.config import load_config
    from fi_spark.run.lock import RunLock
    from fi_spark.run.tracking import Tracker
    with RunLock(sys.argv[1]) as lock:
        tracker = Tracker(load_config("local"), sys.argv[1], lock.info)
        with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):
            with tracker.run("genericize", nested=True):
                print("running", flush=True)
                time.sleep(120)
    """
)


def test_a_killed_run_is_marked_killed_by_the_next(tmp_path: Path) -> None:
    """A run SIGKILLed mid-stage leaves its runs RUNNING and its lock behind; the next run marks both KILLED."""
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    mlflow = client(out)
    assert sorted(r.info.status for r in mlflow.search_runs(["1"])) == ["RUNNING", "RUNNING"]

    with RunLock(str(out)) as lock:  # takes over the dead run's lock
        killed = Tracker(load_config("local"), str(out), lock.info).mark_killed_runs()  # already done at init: none
        assert killed == []
    statuses = {r.info.run_name: r.info.status for r in mlflow.search_runs(["1"])}
    assert statuses == {"pipeline": "KILLED", "genericize": "KILLED"}


def test_datasets_and_models_are_logged(tmp_path: Path) -> None:
    """Dataset inputs carry path, rows and digest; the answering model is a tag of the stage run and its parent."""
    out = tmp_path / "run"
    tracker = Tracker(load_config("local"), str(out))
    result = StageResult("judge", 6, 4, {"below_threshold": 2}, models={"judge-model": 6})
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}) as parent:
        with tracker.run("judge", nested=True) as child:
            tracker.log_result(result)
            tracker.log_datasets(
                [
                    DatasetRef("documents", "s3://b/docs/", 250, "0123456789abcdef"),
                    DatasetRef(
                        "output", str(out), 10, "fedcba9876543210", {"tables": {"judged": 6, "llm_responses": 4}}
                    ),
                ]
            )
    mlflow = client(out)
    run = mlflow.get_run(str(child))
    assert run.data.tags["fi_spark.llm_models"] == '{"judge-model": 6}'
    assert mlflow.get_run(str(parent)).data.tags["fi_spark.llm_models.judge"] == '{"judge-model": 6}'
    logged = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    docs, output = logged["documents"].dataset, logged["output"].dataset
    assert (docs.digest, docs.source_type, json.loads(docs.source)) == (
        "0123456789abcdef",
        "s3",
        {"uri": "s3://b/docs/"},
    )
    assert json.loads(docs.profile) == {"num_rows": 250}
    assert json.loads(output.profile) == {"num_rows": 10, "tables": {"judged": 6, "llm_responses": 4}}
    assert output.source_type == "local"
    assert [t.value for t in logged["output"].tags] == ["output"]


def test_input_digest_follows_the_files_not_their_folder(tmp_path: Path) -> None:
    """The same files copied elsewhere keep their digest; a changed file changes it; an unlistable path says so."""
    import shutil

    from fi_spark.run.session import listing_digest

    first = tmp_path / "a"
    (first / "part").mkdir(parents=True)
    (first / "x.jsonl").write_text('{"text": "one"}\n', encoding="utf-8")
    (first / "part" / "y.jsonl").write_text('{"text": "two"}\n', encoding="utf-8")
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, copy)
    digest = listing_digest([str(first)])
    assert len(digest) == 16 and listing_digest([str(copy)]) == digest
    (copy / "x.jsonl").write_text('{"text": "one!"}\n', encoding="utf-8")
    assert listing_digest([str(copy)]) != digest
    assert listing_digest([str(tmp_path / "missing")]) == "unlisted"
