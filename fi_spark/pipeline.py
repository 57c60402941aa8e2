"""The pipeline: every stage, in order, under one parent MLflow run; and the one list of stages.

``STAGES`` is the single registry: the pipeline runs it top to bottom and the CLI makes one
``fi-spark <stage>`` command of each entry. Stages hand off through tables, so each can also run
alone, and a re-run of the pipeline redoes only missing work (LLM answers come from the ledger).
Stage modules are imported when they run, so `fi-spark --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from fi_spark.runner import run_stage
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.tracking import Tracker


@dataclass(frozen=True)
class PipelineInputs:
    documents: str | None = None
    queries: str | None = None


@dataclass(frozen=True)
class StageSpec:
    name: str  # module under fi_spark.stages, MLflow run name, `fi-spark <name with dashes>`
    help: str
    inputs: tuple[str, ...] = ()  # PipelineInputs fields the stage reads besides tables

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")

    def runner(self, inputs: PipelineInputs) -> Callable[[StageContext], StageResult]:
        module = importlib.import_module(f"fi_spark.stages.{self.name}")
        kwargs = {name: getattr(inputs, name) for name in self.inputs}
        return lambda ctx: module.run(ctx, **kwargs)


STAGES: list[StageSpec] = [
    StageSpec(
        "prepare_corpus",
        "normalize, filter, dedup and chunk documents -> documents, chunks, duplicates, doc_rejects",
        ("documents",),
    ),
    StageSpec("ingest_queries", "read, normalize and dedup user queries -> queries, query_rejects", ("queries",)),
    StageSpec("genericize", "LLM: queries -> <fi> templates + compatible-document descriptions -> templates"),
    StageSpec("import_templates", "load a pre-built template bank (templates.bank), validated like genericized ones"),
    StageSpec("build_index", "embed template descriptions, build a versioned FAISS index artifact"),
    StageSpec("match", "embed documents (Gaussian coverage pooling), retrieve templates with caps -> matches"),
    StageSpec("instantiate", "LLM: fill each matched template from its document and answer -> pairs"),
    StageSpec("judge", "LLM judge scores each pair with a rubric -> judged (threshold applied as a view)"),
    StageSpec("export", "chat-format Parquet/JSONL shards, dataset card, token counts"),
    StageSpec("report", "HTML report with plots of the whole run"),
]


def stage(name: str) -> StageSpec:
    return next(s for s in STAGES if s.name == name)


def _run_one(spec: StageSpec, inputs: PipelineInputs, ctx: StageContext) -> StageResult:
    return spec.runner(inputs)(ctx)


def run_pipeline(
    ctx: StageContext, tracker: Tracker, inputs: PipelineInputs, only: list[str] | None = None
) -> list[StageResult]:
    """Run every stage (or the ``only`` ones, in pipeline order) under one parent run."""
    results: list[StageResult] = []
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):
        for spec in STAGES:
            if only and spec.name not in only:
                continue
            results.append(run_stage(tracker, spec.name, partial(_run_one, spec, inputs, ctx)))
        for result in results:
            if result.stage == "report":  # the report belongs to the pipeline's run too, not only its stage run
                for name, path in result.artifacts.items():
                    tracker.log_artifact(path, artifact_path=name)
        tracker.log_metrics({f"{r.stage}.rows_out": float(r.rows_out) for r in results})
    return results
