"""The configuration tree: `Config` composes every section (each defined in its own module of this package)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fi_spark.config.decontam import DecontamConfig
from fi_spark.config.dedup import NearDedupConfig
from fi_spark.config.embed import EmbedConfig
from fi_spark.config.export import ExportConfig
from fi_spark.config.genericize import TemplatesConfig
from fi_spark.config.index import IndexConfig
from fi_spark.config.instantiate import InstantiateConfig
from fi_spark.config.judge import JudgeConfig
from fi_spark.config.llm import (
    LLMConfig,
    resolve_stage_llm,
)
from fi_spark.config.match import MatchConfig
from fi_spark.config.queries import QueriesConfig
from fi_spark.config.report import ReportConfig
from fi_spark.config.text import PrepareConfig, WebConfig
from fi_spark.section import Section


# --------------------------------------------------------------------------- engine, tables, tracking
class EngineConfig(Section):
    """Which Spark engine runs the jobs (see fi_spark.engine)."""

    mode: Literal["embedded", "local", "connect", "cluster"] = "embedded"
    connect_url: str | None = Field(
        default=None, description="sc://host:port for mode=connect (Databricks Connect, Spark Connect, Sail)"
    )
    local_master: str = "local[*]"
    shuffle_partitions: int = Field(default=8, ge=1)
    batch_rows: int | None = Field(
        default=1024,
        ge=64,
        description="rows per batch inside the embedded engine (Sail's execution batch size): a shuffle buffers "
        "partitions x batches, so with wide rows (documents, prompts) Sail's own 8192 made its memory grow with "
        "the data (bench.engine_memory); null: Sail's default. A SAIL_EXECUTION__BATCH_SIZE set in the "
        "environment wins. Other engines size their batches themselves (spark.sql.execution.arrow.*)",
    )
    spark_conf: dict[str, str] = Field(default_factory=dict, description="extra Spark conf (local / cluster)")
    delta_package: str | None = Field(
        default=None,
        description="the delta-spark Maven coordinate the cluster runs (e.g. io.delta:delta-spark_2.12:3.2.0); "
        "checked against the running Spark and its Scala when the engine starts (fi_spark.config.checks)",
    )

    @model_validator(mode="after")
    def _connect_needs_url(self) -> EngineConfig:
        if self.mode == "connect" and not self.connect_url:
            raise ValueError("engine.mode=connect needs engine.connect_url (e.g. sc://host:15002)")
        return self


NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"  # a catalog, schema or run-group name (quoted with backticks in SQL)

with warnings.catch_warnings():  # `schema` is the key people know (Unity Catalog, Glue); it shadows a
    warnings.filterwarnings("ignore", message='Field name "schema"')  # deprecated pydantic method, unused here

    class TablesConfig(Section):
        """How stage tables are stored (`auto` = Delta where the engine has it, else Parquet) and named."""

        format: Literal["auto", "delta", "parquet"] = "auto"
        catalog: str | None = Field(
            default=None,
            pattern=NAME,
            description="catalog of the table names (Unity Catalog, e.g. main: catalog.schema.table); null: "
            "two-level schema.table in the session's catalog (Glue / Hive metastore, the embedded engine's own)",
        )
        schema: str | None = Field(  # type: ignore[assignment]
            default=None,
            pattern=NAME,
            description="register every stage table by name in this schema (created if missing), as an external "
            "table over its folder, plus the views judged_kept and pairs_kept; null: tables by path only",
        )

        managed: bool = Field(
            default=False,
            description="keep the tables as managed tables of tables.catalog/schema (the catalog decides where "
            "the data lives) instead of external tables under <output>/tables; scratch, journals and exports "
            "stay under --output",
        )

        @model_validator(mode="after")
        def _catalog_needs_schema(self) -> TablesConfig:
            if self.catalog and not self.schema:
                raise ValueError("tables.catalog needs tables.schema (the tables are named catalog.schema.table)")
            if self.managed and not self.schema:
                raise ValueError("tables.managed needs tables.schema (the schema that holds the tables)")
            return self


class TrackingConfig(Section):
    """MLflow tracking (fi_spark.run.tracking). `MLFLOW_TRACKING_URI` in the environment wins over `uri`."""

    enabled: bool = True
    uri: str | None = Field(
        default=None,
        description="tracking server, `databricks`, or a sqlite/file store; default: sqlite inside a local output "
        "folder (a remote --output needs one: the working directory of a cluster job is deleted with it)",
    )
    experiment: str = "fi-spark"
    run_group: str | None = Field(
        default=None,
        pattern=NAME,
        description="stage runs of one job share one parent run, found or created by this tag (e.g. the "
        "Databricks job run id: --set tracking.run_group={{job.run_id}})",
    )
    parent_run_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$", description="nest stage runs under this existing MLflow run"
    )

    @field_validator("run_group", "parent_run_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        """`--set tracking.run_group=4711` (a job run id) arrives as a YAML number: it names a group all the same."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# --------------------------------------------------------------------------- the tree
LLM_STAGES = {"genericize": "templates", "instantiate": "instantiate", "judge": "judge"}  # stage -> its section
SHOWN_LLM_KEYS = ("model", "endpoints", "api", "max_tokens", "temperature", "concurrency")  # resolved_llm.* params


class Config(Section):
    """The whole resolved configuration of a run."""

    engine: EngineConfig = Field(default_factory=EngineConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    queries: QueriesConfig = Field(default_factory=QueriesConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    instantiate: InstantiateConfig = Field(default_factory=InstantiateConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    near_dedup: NearDedupConfig = Field(default_factory=NearDedupConfig)

    @model_validator(mode="after")
    def _stage_llms(self) -> Config:
        for stage in LLM_STAGES:
            self.stage_llm(stage)  # a bad merged value fails at load, naming the key
        return self

    def stage_llm(self, stage: str) -> LLMConfig:
        """The effective LLM settings of one LLM stage -- the only place they are resolved: `llm.*`, then the
        section's `max_tokens` / `temperature` (where set), then the section's own `llm` sub-section."""
        section = getattr(self, LLM_STAGES[stage])
        try:
            return resolve_stage_llm(
                self.llm, section.llm, max_tokens=section.max_tokens, temperature=section.temperature
            )
        except ValueError as exc:
            raise ValueError(f"{LLM_STAGES[stage]}.llm: {exc}") from None

    def to_flat_dict(self) -> dict[str, Any]:
        """`section.key -> value`, the shape MLflow params and logs want; `resolved_llm.<stage>.<key>` shows
        which model and servers each LLM stage uses after the fallbacks (not settable: set `<section>.llm.*`)."""
        flat = _flatten(self.model_dump(mode="json"))
        for stage in LLM_STAGES:
            resolved = self.stage_llm(stage).model_dump(mode="json")
            flat.update({f"resolved_llm.{stage}.{key}": resolved[key] for key in SHOWN_LLM_KEYS})
        return flat


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
