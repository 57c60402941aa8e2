"""The contract every stage follows.

A stage is a module ``fi_spark/<family>/<name>.py`` (its family's package, named in fi_spark.stages.registry) with

- ``TABLES = StageTables(reads=(...), writes=(...), funnel=(...))``: the tables (fi_spark.schemas
  TableSpecs) it needs, the tables it appends to, and the report-funnel steps it owns;
- ``run(ctx, ...) -> StageResult``: reads its inputs through ``ctx.store``, transforms DataFrame ->
  DataFrame, writes through ``ctx.store`` and returns counts (``...``: the file inputs its registry entry names,
  or the ``PipelineLayout`` for export and report).

The pipeline loop (fi_spark.run.pipeline) reads the declaration: before ``run`` every declared read must exist
(else ``MissingInputError`` names the stage that writes it), after ``run`` the result may only report
declared tables and its rows must add up (``StageResult.check_accounting``). A stage never talks to
MLflow: the job / pipeline layer logs the result (fi_spark.run.tracking), so the library stays testable
without a tracking server. The three LLM stages share one loop: fi_spark.stages.llm_stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fi_spark.config import LLM_STAGES, ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from fi_spark.config import Config
    from fi_spark.config.llm import LLMConfig
    from fi_spark.engine import Engine
    from fi_spark.llm.spark import LLMEnv
    from fi_spark.schemas import TableSpec
    from fi_spark.serving.base import InferenceServer
    from fi_spark.tables import TableStore


@dataclass(frozen=True)
class FunnelStep:
    """One row of the report's funnel: the rows of `tables` (summed), shown once the first table exists.

    `distinct` counts distinct values of that column of the first table instead; `where` (Spark SQL) keeps
    only matching rows. `label` and `where` are formatted with the run's config as `cfg`, e.g.
    "score >= {cfg.judge.threshold:g}". A step with no tables counts the rows the export wrote.
    """

    unit: str  # what is counted: queries | documents | pairs
    label: str
    tables: tuple[str, ...] = ()
    distinct: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class StageTables:
    """What a stage reads and writes, declared once beside its code (NeMo Curator's inputs/outputs)."""

    reads: tuple[TableSpec, ...] = ()  # must exist before the stage runs
    writes: tuple[TableSpec, ...] = ()  # the only tables the stage appends to
    funnel: tuple[FunnelStep, ...] = ()


@dataclass(frozen=True)
class PipelineLayout:
    """Every table the stages write and every funnel step, in pipeline order (fi_spark.run.pipeline.layout):
    handed to the export and report stages, which draw the run's funnel without reading the registry."""

    tables: tuple[str, ...] = ()
    funnel: tuple[FunnelStep, ...] = ()


class MissingInputError(ConfigError):
    """A declared input table does not exist yet: the message names the stage to run first."""


@dataclass
class StageContext:
    """What a stage runs with: the engine, the resolved config, the table store on the run's output, a log and
    a local scratch folder. Build it with `for_output` (as a run, a notebook or a test does) or `for_store`
    (a store chosen by hand: a fixed table format, a bench's folder)."""

    spark: SparkSession
    engine: Engine
    config: Config
    store: TableStore
    output: str  # the run's output root (local folder or s3:// prefix)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("fi_spark"))
    work_dir: str | None = None  # a local scratch folder for artifacts (plots, index files) before upload

    @classmethod
    def for_output(
        cls,
        engine: Engine,
        config: Config,
        output: str,
        *,
        work_dir: str | None = None,
        log: logging.Logger | None = None,
    ) -> StageContext:
        """The context of a run on `output`: its tables as `config.tables` asks (Delta where the engine has it,
        else Parquet; named in a catalog schema when managed, created here), scratch files in `work_dir`."""
        from fi_spark.tables import TableStore

        store = TableStore.open(engine.spark, output, config.tables, engine.caps)
        return cls.for_store(engine, config, store, work_dir=work_dir, log=log)

    @classmethod
    def for_store(
        cls,
        engine: Engine,
        config: Config,
        store: TableStore,
        *,
        work_dir: str | None = None,
        log: logging.Logger | None = None,
    ) -> StageContext:
        """The context over a table store opened by the caller (its root is the run's output)."""
        return cls(engine.spark, engine, config, store, store.root, log or logging.getLogger("fi_spark"), work_dir)

    def llm_env(self, stage: str | None = None, server: InferenceServer | None = None) -> LLMEnv:
        """What fi_spark.llm.complete needs from this run: the LLM stage's own settings (Config.stage_llm),
        or `llm.*` for anything else (benches), and its server (fi_spark.serving.server_for, unless one is
        given). Refuses a cluster without servers (`require_llm_servers`)."""
        from fi_spark.llm.spark import LLMEnv
        from fi_spark.serving import server_for

        cfg = self.config.stage_llm(stage) if stage in LLM_STAGES else self.config.llm
        require_llm_servers(self.config, stage or "llm", cfg)
        partitions = cfg.partitions or self.config.engine.shuffle_partitions
        return LLMEnv(self.spark, self.store, cfg, self.output, self.log, partitions, server or server_for(cfg))


def require_llm_servers(config: Config, stage: str, cfg: LLMConfig | None = None) -> None:
    """On a cluster (`engine.mode` cluster or connect) with no endpoints, stop: the local CPU server would start
    on the driver at 127.0.0.1, which the executors that send the requests cannot reach (issue #19, item 7)."""
    cfg = cfg or config.stage_llm(stage)
    if cfg.endpoints or config.engine.mode not in ("cluster", "connect"):
        return
    own = f"{LLM_STAGES[stage]}.llm.endpoints" if stage in LLM_STAGES else "llm.endpoints"
    raise ConfigError(
        f"{stage}: engine.mode={config.engine.mode} runs LLM requests on executors, which cannot reach a local "
        f"server on the driver, so point the stage at your OpenAI-compatible servers with "
        f"--set 'llm.endpoints=[\"http://gpu-host:8000/v1\"]' (every stage) or {own} (this stage only)."
    )


class AccountingError(RuntimeError):
    """rows_in != rows_out + rejected (some rows were lost or double counted), or an undeclared table written."""


@dataclass
class StageResult:
    stage: str
    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows
    metrics: dict[str, float] = field(default_factory=dict)  # extra numbers for MLflow
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> local file to log
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows added by this run
    models: dict[str, int] = field(default_factory=dict)  # LLM stages: model that answered -> rows decided
    seconds: float = 0.0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def accounting_ok(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_rejected

    def check_accounting(self) -> None:
        if not self.accounting_ok:
            raise AccountingError(
                f"{self.stage}: rows in {self.rows_in} != out {self.rows_out} + rejected {self.rows_rejected} "
                f"({self.rejected})"
            )

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        rate = self.rows_in / self.seconds if self.seconds else 0.0
        return (
            f"{self.stage}: in={self.rows_in} out={self.rows_out} rejected={self.rows_rejected} ({reasons}) "
            f"in {self.seconds:.1f}s ({rate:.1f} rows/s)"
        )

    def as_metrics(self) -> dict[str, float]:
        """Flat numeric metrics for MLflow: rows_in/out/rejected, rejected.<reason>, seconds, rows_per_s, extra."""
        out: dict[str, float] = {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_rejected": self.rows_rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_in / self.seconds, 3) if self.seconds else 0.0,
        }
        out.update({f"rejected.{reason}": n for reason, n in self.rejected.items()})
        out.update({f"added.{table}": n for table, n in self.tables.items()})
        out.update(self.metrics)
        return out
