"""MLflow runs: one parent run per pipeline, one nested run per stage.

Each stage run gets the resolved config as params and as a ``config.yaml`` artifact (both redacted:
fi_spark.redact masks secret-looking keys and URL credentials), and the
StageResult's numbers as metrics (rows in / out / rejected by reason, seconds, rows/s, extras).
The store defaults to a SQLite database inside the output folder, so a laptop run is self-contained
and ``mlflow ui --backend-store-uri sqlite:///<output>/mlflow.db`` shows it; ``MLFLOW_TRACKING_URI``
(Databricks, a tracking server) wins over that, then ``tracking.uri``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from fi_spark import storage
from fi_spark.config import Config
from fi_spark.redact import redact, redact_config, redact_url
from fi_spark.stages.base import StageResult

log = logging.getLogger(__name__)

__all__ = ["Tracker", "redact", "redact_config", "redact_url", "resolve_tracking_uri"]


def resolve_tracking_uri(config: Config, output: str) -> tuple[str, str | None]:
    """(tracking uri, artifact location for a new experiment or None to let the server decide)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, None
    if config.tracking.uri:
        return config.tracking.uri, None
    if storage.is_remote(output):
        local = os.path.abspath("mlflow")
        log.warning("output %s is remote and no MLFLOW_TRACKING_URI is set: tracking to %s", output, local)
        root = local
    else:
        root = os.path.abspath(output)
    os.makedirs(root, exist_ok=True)
    return f"sqlite:///{os.path.join(root, 'mlflow.db')}", "file://" + os.path.join(root, "mlartifacts")


class Tracker:
    """Thin wrapper so stages and jobs never touch mlflow directly; a no-op when tracking is disabled."""

    def __init__(self, config: Config, output: str):
        self.config = config
        self.enabled = config.tracking.enabled
        self._mlflow: Any = None
        if not self.enabled:
            return
        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        uri, artifacts = resolve_tracking_uri(config, output)
        mlflow.set_tracking_uri(uri)
        name = config.tracking.experiment
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=artifacts)
        mlflow.set_experiment(name)
        self._mlflow = mlflow
        self.uri = uri
        log.info("MLflow tracking to %s (experiment %s)", redact_url(uri), name)

    @contextmanager
    def run(self, name: str, nested: bool = False, tags: dict[str, str] | None = None) -> Iterator[str | None]:
        """Start a run (nested under the active one when ``nested``); yields the run id."""
        if not self.enabled:
            yield None
            return
        with self._mlflow.start_run(run_name=name, nested=nested, tags=tags or {}) as active:
            self._log_config()
            yield active.info.run_id

    def _log_config(self) -> None:
        params = redact_config(self.config.to_flat_dict())
        self._mlflow.log_params({k: _param_value(v) for k, v in params.items()})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "config.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(redact(self.config.model_dump(mode="json")), fh, sort_keys=True)
            self._mlflow.log_artifact(path)

    def log_result(self, result: StageResult) -> None:
        if not self.enabled:
            return
        self._mlflow.log_metrics({k.replace(" ", "_"): float(v) for k, v in result.as_metrics().items()})
        for name, path in result.artifacts.items():
            if os.path.isdir(path):
                self._mlflow.log_artifacts(path, artifact_path=name)
            elif os.path.exists(path):
                self._mlflow.log_artifact(path)

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
