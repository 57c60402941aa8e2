"""The pipeline: every stage that exists, in order, under one parent MLflow run.

Stages hand off through tables, so each stage can also be run alone (``fi-spark <stage>``) and a
re-run of the pipeline redoes only missing work.
"""

from __future__ import annotations

from dataclasses import dataclass

from fi_spark.runner import run_stage
from fi_spark.stages import prepare_corpus
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.tracking import Tracker


@dataclass(frozen=True)
class PipelineInputs:
    documents: str
    queries: str


def run_pipeline(ctx: StageContext, tracker: Tracker, inputs: PipelineInputs) -> list[StageResult]:
    results: list[StageResult] = []
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):
        results.append(run_stage(tracker, prepare_corpus.STAGE, lambda: prepare_corpus.run(ctx, inputs.documents)))
        tracker.log_metrics({f"{r.stage}.rows_out": float(r.rows_out) for r in results})
    return results
