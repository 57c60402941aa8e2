"""Pipeline runs in MLflow: list them, and compare two side by side (`fi-spark runs list|compare A B`).

A pipeline run is the parent MLflow run (tag ``fi_spark.stage=pipeline``) with one nested run per stage
(fi_spark.run.tracking). A comparison puts, for each key, the two runs' values next to each other:
params as ``param <key>`` (the resolved config), metrics as ``<stage>.<metric>`` from each stage's run
(and the parent's own metrics without a stage prefix). Keys whose values differ come first, then the
equal ones; within each group keys are sorted. Only the MLflow client API is used, so the same code
reads a local sqlite store, a tracking server or Databricks (notebooks call these functions too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fi_spark.config import ConfigError

PIPELINE_TAG = "fi_spark.stage"


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started: str  # UTC, ISO minutes
    status: str
    stages: int
    rows_out: dict[str, float]  # stage -> rows_out


@dataclass(frozen=True)
class Difference:
    key: str  # "param <name>" or "<stage>.<metric>"
    a: str | None
    b: str | None

    @property
    def differs(self) -> bool:
        return self.a != self.b


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: Any, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(f"no MLflow experiment {experiment!r} in this store: run `fi-spark pipeline` first")
    return str(found.experiment_id)


def _children(client: Any, experiment_id: str, run_id: str) -> list[Any]:
    return list(client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"))


def list_runs(tracking_uri: str, experiment: str) -> list[RunSummary]:
    """Pipeline runs of the experiment, newest first, with each stage's rows_out."""
    client = _client(tracking_uri)
    exp = _experiment_id(client, experiment)
    parents = client.search_runs(
        [exp], filter_string=f"tags.`{PIPELINE_TAG}` = 'pipeline'", order_by=["attributes.start_time DESC"]
    )
    out = []
    for run in parents:
        children = _children(client, exp, run.info.run_id)
        rows = {c.info.run_name: c.data.metrics["rows_out"] for c in children if "rows_out" in c.data.metrics}
        started = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        out.append(RunSummary(run.info.run_id, started, run.info.status, len(children), rows))
    return out


def resolve_run(tracking_uri: str, experiment: str, ref: str) -> str:
    """A full run id from a unique prefix of a pipeline run's id."""
    matches = [r.run_id for r in list_runs(tracking_uri, experiment) if r.run_id.startswith(ref)]
    if len(matches) != 1:
        found = "no pipeline run" if not matches else f"{len(matches)} pipeline runs"
        raise ConfigError(f"run {ref!r}: {found} with that id (prefix); `fi-spark runs list` shows them")
    return matches[0]


def run_values(tracking_uri: str, experiment: str, run_id: str) -> dict[str, str]:
    """Every param and metric of a pipeline run and its stage runs, as display strings keyed as documented above."""
    client = _client(tracking_uri)
    exp = _experiment_id(client, experiment)
    parent = client.get_run(run_id)
    values = {f"param {k}": v for k, v in parent.data.params.items()}
    values.update({k: _number(v) for k, v in parent.data.metrics.items()})
    for child in _children(client, exp, run_id):
        values.update({f"{child.info.run_name}.{k}": _number(v) for k, v in child.data.metrics.items()})
    return values


def compare_runs(tracking_uri: str, experiment: str, a: str, b: str) -> list[Difference]:
    """Both runs' values side by side: differing keys first, then equal ones, each group sorted by key."""
    va = run_values(tracking_uri, experiment, resolve_run(tracking_uri, experiment, a))
    vb = run_values(tracking_uri, experiment, resolve_run(tracking_uri, experiment, b))
    rows = [Difference(k, va.get(k), vb.get(k)) for k in set(va) | set(vb)]
    return sorted(rows, key=lambda d: (not d.differs, d.key))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def format_runs(runs: list[RunSummary]) -> str:
    lines = [f"{'run id':<32}  {'started (UTC)':<16}  {'status':<9}  stages  pairs out"]
    for r in runs:
        pairs = r.rows_out.get("judge", r.rows_out.get("instantiate"))
        shown = "-" if pairs is None else _number(pairs)
        lines.append(f"{r.run_id:<32}  {r.started:<16}  {r.status:<9}  {r.stages:>6}  {shown:>9}")
    return "\n".join(lines)


def format_comparison(rows: list[Difference], a: str, b: str) -> str:
    width = max([len(r.key) for r in rows] + [3])
    cell = max([len(str(r.a)) for r in rows] + [len(a)] + [8])
    cell = min(cell, 40)
    lines = [f"{'key':<{width}}  {a[:cell]:<{cell}}  {b[:cell]}", f"{'-' * width}  {'-' * cell}  {'-' * cell}"]
    differing = sum(r.differs for r in rows)
    for i, r in enumerate(rows):
        if i == differing and differing:
            lines.append(f"{'(equal below)':<{width}}")
        a_text = "-" if r.a is None else r.a[:cell]
        b_text = "-" if r.b is None else r.b[:cell]
        lines.append(f"{r.key:<{width}}  {a_text:<{cell}}  {b_text}")
    lines.append(f"{differing} of {len(rows)} keys differ")
    return "\n".join(lines)
