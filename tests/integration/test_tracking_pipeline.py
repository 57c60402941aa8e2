"""What a real pipeline run logs to MLflow beyond metrics (fi_spark.run.session / fi_spark.run.tracking): the model that
answered each LLM stage and the stage's datasets, on the shared small run (tests/integration/small_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from small_run import shared_run  # a helper module beside this file

pytestmark = pytest.mark.slow  # the small run: two pipeline runs against the scripted LLM server


@pytest.fixture(scope="module")
def run_folder(_embedded, tmp_path_factory) -> Path:
    return shared_run(_embedded, tmp_path_factory)


def test_stage_runs_log_their_models_and_output_dataset(run_folder: Path) -> None:
    """The second pipeline run: instantiate and judge name the model that answered (stage tag and parent tag);
    every stage run has its output folder as a dataset input with the rows of each table it writes."""
    client = MlflowClient(f"sqlite:///{run_folder}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "fi-spark"]
    parents = client.search_runs([experiment.experiment_id], "tags.`fi_spark.stage` = 'pipeline'",
                                 order_by=["attributes.start_time DESC"])  # fmt: skip
    latest = parents[0]
    children = {
        r.info.run_name: r
        for r in client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{latest.info.run_id}'")
    }
    assert sorted(children) == ["export", "instantiate", "judge"]
    models = {s: json.loads(children[s].data.tags["fi_spark.llm_models"]) for s in ("instantiate", "judge")}
    assert models == {"instantiate": {"test-model": 6}, "judge": {"test-model": 2}}
    assert json.loads(latest.data.tags["fi_spark.llm_models.judge"]) == models["judge"]
    datasets = {d.dataset.name: d.dataset for d in children["judge"].inputs.dataset_inputs}
    assert list(datasets) == ["output"]
    profile = json.loads(datasets["output"].profile)
    assert profile["tables"]["judged"] == 6 and json.loads(datasets["output"].source) == {"uri": str(run_folder)}
    assert profile["num_rows"] == sum(profile["tables"].values())
