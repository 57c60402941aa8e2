"""The pipeline: every stage, in order, under one parent MLflow run; and the one list of stages.

``STAGES`` is the single registry: the pipeline runs it top to bottom and the CLI makes one
``fi-spark <stage>`` command of each entry. An entry holds only names and help text; what a stage reads
and writes is declared in its module (``TABLES``, fi_spark.stages.base.StageTables) and read from there
by ``StageSpec.run`` (inputs must exist, results may report declared tables only, rows must add up), by
``producers`` (which stage writes a table) and by the report's funnel. Stages hand off through tables, so
each can also run alone, and a re-run of the pipeline redoes only missing work (LLM answers come from
the ledger). Stage modules -- and with them pyspark -- are imported only when a stage runs or its
declaration is read, so `fi-spark --help` does not import pyspark (tests/unit/test_pipeline_contract.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING

from fi_spark import storage
from fi_spark.config import LLM_STAGES
from fi_spark.errors import is_disk_full, output_full
from fi_spark.heartbeat import Heartbeat, spark_tasks
from fi_spark.stages.base import (
    AccountingError,
    MissingInputError,
    StageContext,
    StageResult,
    StageTables,
    require_llm_servers,
)

if TYPE_CHECKING:
    from fi_spark.tracking import Tracker


HEARTBEAT_PER_PROGRESS = 4  # a stage's "still running" line comes every 4 x llm.progress_s (60 s by default)


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

    def module(self) -> ModuleType:
        return importlib.import_module(f"fi_spark.stages.{self.name}")

    @property
    def tables(self) -> StageTables:
        """The stage's declared reads and writes (imports its module)."""
        declared: StageTables = self.module().TABLES
        return declared

    def run(self, ctx: StageContext, inputs: PipelineInputs | None = None) -> StageResult:
        """Check the declared inputs, run the stage, check its result against the declaration."""
        require_inputs(ctx, self)
        kwargs = {name: getattr(inputs or PipelineInputs(), name) for name in self.inputs}
        classic = ctx.engine.caps.spark_context
        details = partial(spark_tasks, ctx.spark) if classic else (lambda: "")
        try:
            with Heartbeat(self.name, HEARTBEAT_PER_PROGRESS * ctx.config.llm.progress_s, ctx.log, details):
                result: StageResult = self.module().run(ctx, **kwargs)
        except Exception as exc:  # a full output disk surfaces from any Spark action or journal write: one line
            if is_disk_full(exc):
                raise output_full(self.name, storage.display(ctx.output)) from exc
            raise
        check_result(result, self.tables)
        for table in self.tables.writes:  # a stage that ran leaves its tables, even empty: "ran, nothing came
            if not ctx.store.exists(table):  # out" must not read as "never ran" to the next stage's check
                ctx.store.write(ctx.spark.createDataFrame([], table.schema), table)
        from fi_spark.catalog import Catalog  # pyspark-free import rule: only when a stage runs

        Catalog.of(ctx).register(self.tables.writes)  # names in tables.catalog/schema, when set
        return result


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
    StageSpec(
        "judge",
        "LLM judge scores each pair -> judged (threshold applied as a view); the score is the judge prompt's: "
        "the local profile's judge.v4 reads the answer's likelihood lift from its instruction, judge.v1-v3 ask "
        "for a rubric or yes/no score",
    ),
    StageSpec("export", "chat-format Parquet/JSONL shards, dataset card, token counts"),
    StageSpec("report", "HTML report with plots of the whole run"),
]


def llm_stages_to_run(ctx: StageContext, inputs: PipelineInputs, only: list[str] | None) -> list[str]:
    """The LLM stages this pipeline run will send requests from: genericize only when queries are given (a run
    from a template bank has none to send)."""
    queries = bool(inputs.queries or ctx.config.queries.inputs)
    return [s.name for s in STAGES if s.name in LLM_STAGES and (not only or s.name in only)
            and (s.name != "genericize" or queries)]  # fmt: skip


def stage(name: str) -> StageSpec:
    return next(s for s in STAGES if s.name == name)


def producers(table: str) -> list[str]:
    """The stages that declare they write `table`, in pipeline order."""
    return [s.name for s in STAGES if any(t.name == table for t in s.tables.writes)]


def require_inputs(ctx: StageContext, spec: StageSpec) -> None:
    """Raise MissingInputError naming the stage(s) to run first when a declared input table is absent."""
    for table in spec.tables.reads:
        if not ctx.store.exists(table):
            first = " or ".join(producers(table.name)) or "the stage that writes it"
            raise MissingInputError(
                f"{spec.name} needs the `{table.name}` table, which does not exist: run {first} first"
            )


def check_result(result: StageResult, declared: StageTables) -> None:
    """The accounting check, read from the declaration: rows add up and only declared tables were written."""
    undeclared = sorted(set(result.tables) - {t.name for t in declared.writes})
    if undeclared:
        raise AccountingError(f"{result.stage}: reported rows added to undeclared table(s) {undeclared}")
    result.check_accounting()


def written_tables() -> list[str]:
    """Every table some stage writes, in pipeline order (the report's list of tables)."""
    return list(dict.fromkeys(t.name for s in STAGES for t in s.tables.writes))


def run_pipeline(
    ctx: StageContext, tracker: Tracker, inputs: PipelineInputs, only: list[str] | None = None
) -> list[StageResult]:
    """Run every stage (or the ``only`` ones, in pipeline order) under one parent run."""
    from fi_spark.runner import run_stage

    for name in llm_stages_to_run(ctx, inputs, only):  # a cluster without LLM servers stops before any stage runs
        require_llm_servers(ctx.config, name)
    results: list[StageResult] = []
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):
        for spec in STAGES:
            if only and spec.name not in only:
                continue
            results.append(run_stage(tracker, spec.name, partial(spec.run, ctx, inputs), ctx, inputs))
        for result in results:
            if result.stage == "report":  # the report belongs to the pipeline's run too, not only its stage run
                for name, path in result.artifacts.items():
                    tracker.log_artifact(path, artifact_path=name)
        tracker.log_metrics({f"{r.stage}.rows_out": float(r.rows_out) for r in results})
    return results
