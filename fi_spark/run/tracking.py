"""MLflow runs: one parent run per pipeline (or per job: a run group), one nested run per stage.

Each stage run gets the resolved config as params and as a ``config.yaml`` artifact (both redacted:
fi_spark.redact masks secret-looking keys and URL credentials), the StageResult's numbers as metrics (rows
in / out / rejected by reason, seconds, rows/s, extras), the models that answered its LLM requests
(tag ``fi_spark.llm_models``, also set on the parent as ``fi_spark.llm_models.<stage>``), and its data as
MLflow dataset inputs (fi_spark.run.session: ``--documents``, ``--queries``, ``--output`` with path, rows, digest).
Where runs go is fi_spark.run.tracking_store (one resolution; a throwaway store is refused).

Run groups: a job that runs one stage per task (the Databricks bundle's ``fi_spark_stages``) passes
``--set tracking.run_group=<job run id>``; every task then finds (or the first creates) the group's parent
run, tagged ``fi_spark.run_group``, resumes it and nests its stage run under it. ``tracking.parent_run_id``
names the parent directly.

Killed runs: every run is tagged with the output folder and the run lock's token, pid and host
(fi_spark.run.lock). A run that holds the output's lock knows no other live run writes there, so a run of
that folder still RUNNING with another token was killed (its pid is dead, or its lock went stale): it is
marked KILLED when the next run starts, with one log line.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from fi_spark.config import Config, ConfigError
from fi_spark.procs import pid_alive
from fi_spark.redact import redact, redact_config, redact_url
from fi_spark.run.lock import LockInfo
from fi_spark.run.tracking_store import relocate_artifacts, resolve_tracking_uri
from fi_spark.stages.base import StageResult

log = logging.getLogger(__name__)

__all__ = ["DatasetRef", "Tracker", "redact", "redact_config", "redact_url", "resolve_tracking_uri"]

STAGE_TAG, GROUP_TAG, OUTPUT_TAG, LOCK_TAG = "fi_spark.stage", "fi_spark.run_group", "fi_spark.output", "fi_spark.lock"
PID_TAG, HOST_TAG, MODELS_TAG = "fi_spark.pid", "fi_spark.host", "fi_spark.llm_models"


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a stage read or wrote, logged as an MLflow dataset input of its run."""

    context: str  # documents | queries | output
    uri: str
    rows: int
    digest: str  # fi_spark.run.session: a listing or row-count fingerprint (MLflow stores up to 36 characters)
    profile: dict[str, Any] | None = None  # shown beside the rows (e.g. rows per table of the output)


class Tracker:
    """Thin wrapper so stages and jobs never touch mlflow directly; a no-op when tracking is disabled."""

    def __init__(self, config: Config, output: str, lock: LockInfo | None = None):
        self.config = config
        self.enabled = config.tracking.enabled
        self.output = output
        self.lock = lock
        self._mlflow: Any = None
        if not self.enabled:
            return
        uri, artifacts = resolve_tracking_uri(config, output)  # refuses a throwaway store before mlflow loads
        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if artifacts is not None:  # the default store in the output folder: follow the folder if it moved
            os.makedirs(os.path.dirname(uri[len("sqlite:///") :]), exist_ok=True)
            relocate_artifacts(uri[len("sqlite:///") :], os.path.dirname(artifacts[len("file://") :]))
        user_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)  # which also exports it as MLFLOW_TRACKING_URI, for subprocesses; undone,
        if user_env is None:  # or the next run in this process (another output folder) would track here
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        name = config.tracking.experiment
        experiment = mlflow.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location=artifacts)
        )
        mlflow.set_experiment(name)
        self._mlflow = mlflow
        self._client = mlflow.tracking.MlflowClient()
        self.uri = uri
        log.info("MLflow tracking to %s (experiment %s)", redact_url(uri), name)
        self.mark_killed_runs()

    # ---- tags every run carries
    def _tags(self) -> dict[str, str]:
        tags = {OUTPUT_TAG: self.output}
        if self.config.tracking.run_group:
            tags[GROUP_TAG] = self.config.tracking.run_group
        if self.lock is not None:
            tags.update({LOCK_TAG: self.lock.token, PID_TAG: str(self.lock.pid), HOST_TAG: self.lock.host})
        return tags

    def mark_killed_runs(self) -> list[str]:
        """Mark KILLED the runs of this output left RUNNING by a run that is gone (see the module docstring)."""
        if not self.enabled or self.lock is None or "'" in self.output:
            return []
        running = self._client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' AND tags.`{OUTPUT_TAG}` = '{self.output}'",
        )
        killed = []
        for run in running:
            tags = run.data.tags
            token, host, pid = tags.get(LOCK_TAG), tags.get(HOST_TAG), int(tags.get(PID_TAG, "0") or 0)
            if token is None or token == self.lock.token:
                continue
            if host == socket.gethostname() and pid != os.getpid() and pid_alive(pid):
                continue  # alive here, yet without the lock: not ours to judge
            self._client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
            log.warning(
                "MLflow run %s (%s) was left RUNNING by pid %s on %s, which is gone: marked KILLED",
                run.info.run_id, run.info.run_name, pid, host,
            )  # fmt: skip
        return killed

    # ---- runs
    def _group_parent(self) -> str | None:
        """The run group's parent run id (found by tag, or created), or tracking.parent_run_id, or None."""
        cfg = self.config.tracking
        if cfg.parent_run_id:
            try:
                return str(self._client.get_run(cfg.parent_run_id).info.run_id)
            except Exception as exc:  # noqa: BLE001 - MlflowException: no such run in this store
                raise ConfigError(f"tracking.parent_run_id={cfg.parent_run_id}: no such run in {self.uri}") from exc
        if not cfg.run_group:
            return None
        found = self._client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{GROUP_TAG}` = '{cfg.run_group}' AND tags.`{STAGE_TAG}` = 'pipeline'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if found:
            return str(found[0].info.run_id)
        tags = {**self._tags(), STAGE_TAG: "pipeline"}
        created = self._client.create_run(self.experiment_id, run_name="pipeline", tags=tags)
        log.info("MLflow run group %s: parent run %s", cfg.run_group, created.info.run_id)
        return str(created.info.run_id)

    @contextmanager
    def run(self, name: str, nested: bool = False, tags: dict[str, str] | None = None) -> Iterator[str | None]:
        """Start a run (nested under the active one when ``nested``); yields the run id.

        With a run group (or parent run id) and no active run, a pipeline run (not nested) *is* the group's
        parent, resumed; a stage run is nested under that parent.
        """
        if not self.enabled:
            yield None
            return
        mlflow = self._mlflow
        tags = {**self._tags(), **(tags or {})}
        parent = self._group_parent() if mlflow.active_run() is None else None
        if parent is None:
            with mlflow.start_run(run_name=name, nested=nested, tags=tags) as active:
                self._log_config()
                yield active.info.run_id
        elif not nested:
            with mlflow.start_run(run_id=parent, tags=tags) as active:
                self._log_config()
                yield active.info.run_id
        else:
            with mlflow.start_run(run_id=parent, tags=self._tags()):
                self._log_config()  # the group's params (its first task's values), as a pipeline run has them
                with mlflow.start_run(run_name=name, nested=True, tags=tags) as active:
                    self._log_config()
                    yield active.info.run_id

    def _log_config(self) -> None:
        """Config params (those the run lacks: a resumed group run keeps its first values) and config.yaml."""
        run = self._mlflow.active_run()
        have = set(self._client.get_run(run.info.run_id).data.params)
        params = redact_config(self.config.to_flat_dict())
        self._mlflow.log_params({k: _param_value(v) for k, v in params.items() if k not in have})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "config.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(redact(self.config.model_dump(mode="json")), fh, sort_keys=True)
            self._mlflow.log_artifact(path)

    def log_result(self, result: StageResult) -> None:
        if not self.enabled:
            return
        self._mlflow.log_metrics({k.replace(" ", "_"): float(v) for k, v in result.as_metrics().items()})
        if result.models:
            models = json.dumps(dict(sorted(result.models.items())))
            self._mlflow.set_tag(MODELS_TAG, models)
            run_id = self._mlflow.active_run().info.run_id
            parent = self._client.get_run(run_id).data.tags.get("mlflow.parentRunId")
            if parent:
                self._client.set_tag(parent, f"{MODELS_TAG}.{result.stage}", models)
        for name, path in result.artifacts.items():
            if os.path.isdir(path):
                self._mlflow.log_artifacts(path, artifact_path=name)
            elif os.path.exists(path):
                self._mlflow.log_artifact(path)

    def log_datasets(self, datasets: list[DatasetRef]) -> None:
        """MLflow dataset inputs of the active run (the Datasets column of the UI; `run.inputs` in the API)."""
        if not self.enabled or not datasets:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = []
        for ref in datasets:
            profile = json.dumps({"num_rows": ref.rows, **(ref.profile or {})}, sort_keys=True)
            source = json.dumps({"uri": ref.uri})
            kind = ref.uri.split(":", 1)[0] if "://" in ref.uri else "local"
            dataset = Dataset(ref.context, ref.digest, kind, source, profile=profile)
            inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", ref.context)]))
        self._client.log_inputs(self._mlflow.active_run().info.run_id, datasets=inputs)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        if self.enabled:
            self._mlflow.log_metrics(metrics)

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.enabled:
            if os.path.isdir(path):
                self._mlflow.log_artifacts(path, artifact_path=artifact_path)
            else:
                self._mlflow.log_artifact(path, artifact_path=artifact_path)


def _param_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, (dict, list)) else str(value)
    return text[:6000]  # MLflow's param value limit
