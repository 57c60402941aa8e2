"""The pipeline loop: every stage of the registry (fi_spark.stages.registry), in order, under one parent MLflow run.

What a stage reads and writes is declared in its module (``TABLES``, fi_spark.stages.base.StageTables) and
read from there by ``run_spec`` (inputs must exist, results may report declared tables only, rows must add
up), by ``producers`` (which stage writes a table) and by ``layout`` (the tables and funnel handed to the
export and report stages). Stages hand off through tables, so
each can also run alone, and a re-run of the pipeline redoes only missing work (LLM answers come from
the ledger). Stage modules -- and with them pyspark -- are imported only when a stage runs or its
declaration is read, so `fi-spark --help` does not import pyspark (tests/unit/test_pipeline_contract.py).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from fi_spark import storage
from fi_spark.config import LLM_STAGES
from fi_spark.errors import is_disk_full, output_full
from fi_spark.heartbeat import Heartbeat, spark_tasks
from fi_spark.run.session import declared, module, run_stage
from fi_spark.stages.base import (
    AccountingError,
    MissingInputError,
    PipelineLayout,
    StageContext,
    StageResult,
    StageTables,
    require_llm_servers,
)
from fi_spark.stages.registry import STAGES, PipelineInputs, StageSpec

if TYPE_CHECKING:
    from fi_spark.run.tracking import Tracker


HEARTBEAT_PER_PROGRESS = 4  # a stage's "still running" line comes every 4 x llm.progress_s (60 s by default)


def layout() -> PipelineLayout:
    """Every table some stage writes and every funnel step, in pipeline order: what the report and the
    dataset card are handed (they never read the registry themselves)."""
    decls = [declared(s) for s in STAGES]
    tables = tuple(dict.fromkeys(t.name for d in decls for t in d.writes))
    return PipelineLayout(tables, tuple(step for d in decls for step in d.funnel))


def run_spec(spec: StageSpec, ctx: StageContext, inputs: PipelineInputs | None = None) -> StageResult:
    """Check the declared inputs, run the stage, check its result against the declaration."""
    require_inputs(ctx, spec)
    given = inputs or PipelineInputs()
    kwargs = {name: layout() if name == "layout" else getattr(given, name) for name in spec.inputs}
    classic = ctx.engine.caps.spark_context
    details = partial(spark_tasks, ctx.spark) if classic else (lambda: "")
    tables = declared(spec)
    try:
        with Heartbeat(spec.name, HEARTBEAT_PER_PROGRESS * ctx.config.llm.progress_s, ctx.log, details):
            result: StageResult = module(spec).run(ctx, **kwargs)
    except Exception as exc:  # a full output disk surfaces from any Spark action or journal write: one line
        if is_disk_full(exc):
            raise output_full(spec.name, storage.display(ctx.output)) from exc
        raise
    check_result(result, tables)
    for table in tables.writes:  # a stage that ran leaves its tables, even empty: "ran, nothing came
        if not ctx.store.exists(table):  # out" must not read as "never ran" to the next stage's check
            ctx.store.write(ctx.spark.createDataFrame([], table.schema), table)
    from fi_spark.catalog import Catalog  # pyspark-free import rule: only when a stage runs

    Catalog.of(ctx).register(tables.writes)  # names in tables.catalog/schema, when set
    return result


def llm_stages_to_run(ctx: StageContext, inputs: PipelineInputs, only: list[str] | None) -> list[str]:
    """The LLM stages this pipeline run will send requests from: genericize only when queries are given (a run
    from a template bank has none to send)."""
    queries = bool(inputs.queries or ctx.config.queries.inputs)
    return [s.name for s in STAGES if s.name in LLM_STAGES and (not only or s.name in only)
            and (s.name != "genericize" or queries)]  # fmt: skip


def producers(table: str) -> list[str]:
    """The stages that declare they write `table`, in pipeline order."""
    return [s.name for s in STAGES if any(t.name == table for t in declared(s).writes)]


def require_inputs(ctx: StageContext, spec: StageSpec) -> None:
    """Raise MissingInputError naming the stage(s) to run first when a declared input table is absent."""
    for table in declared(spec).reads:
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


def run_pipeline(
    ctx: StageContext, tracker: Tracker, inputs: PipelineInputs, only: list[str] | None = None
) -> list[StageResult]:
    """Run every stage (or the ``only`` ones, in pipeline order) under one parent run."""
    for name in llm_stages_to_run(ctx, inputs, only):  # a cluster without LLM servers stops before any stage runs
        require_llm_servers(ctx.config, name)
    results: list[StageResult] = []
    with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):
        for spec in STAGES:
            if only and spec.name not in only:
                continue
            results.append(run_stage(tracker, spec.name, partial(run_spec, spec, ctx, inputs), ctx, inputs))
        for result in results:
            if result.stage == "report":  # the report belongs to the pipeline's run too, not only its stage run
                for name, path in result.artifacts.items():
                    tracker.log_artifact(path, artifact_path=name)
        tracker.log_metrics({f"{r.stage}.rows_out": float(r.rows_out) for r in results})
    return results
