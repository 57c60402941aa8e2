"""Typed configuration: YAML profiles + CLI overrides -> one frozen `Config`, validated once.

Each section is defined beside the code it configures and composed here into the one tree:

    engine, tables, tracking      here: they configure engine.py, tables.py and tracking.py, which
                                  import Spark or MLflow (the loader must not)
    prepare, web                  fi_spark/text/config.py (QualityThresholds, WebQualityThresholds)
    near_dedup                    fi_spark/dedup/config.py
    llm, llm.local                fi_spark/llm/config.py
    queries, templates            fi_spark/genericize/config.py
    embed                         fi_spark/embed/config.py
    index, match                  fi_spark/index/config.py
    decontam, instantiate, judge  fi_spark/instantiate/config.py
    export                        fi_spark/export/config.py
    report                        fi_spark/report/config.py

Every section is re-exported, so `from fi_spark.config import NearDedupConfig` works wherever the class
lives (stages, tests and benches import them from here); code inside a package imports its own.
Prompt files (conf/prompts/*.yaml) are loaded by fi_spark.prompting.spec; both modules share
fi_spark.section (the `Section` base, `ConfigError`, `conf_dirs`).

This module and fi_spark.prompting.spec are the only ones that read YAML. Library code receives these
objects and never reads files or environment variables for settings itself (the api key of an LLM
endpoint is named by the *name* of its environment variable; the value is read where the request is made).

Loading order (later wins): model defaults -> profile file (`conf/<name>.yaml` or a path) ->
`--set section.key=value` overrides. Every key is checked: an unknown key, a wrong type or an
out-of-range value fails with one message that names the key and where it came from.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from fi_spark.decontam.config import DecontamConfig
from fi_spark.dedup.config import NearDedupConfig
from fi_spark.embed.config import EmbedConfig
from fi_spark.export.config import ExportConfig
from fi_spark.genericize.config import TemplatesConfig
from fi_spark.index.config import IndexConfig
from fi_spark.ingest.config import QueriesConfig
from fi_spark.instantiate.config import InstantiateConfig
from fi_spark.judge.config import JudgeConfig
from fi_spark.llm.config import (
    LOCAL_MODELS,
    LLMConfig,
    LocalLLMServerConfig,
    LocalModel,
    StageLLMConfig,
    resolve_stage_llm,
)
from fi_spark.match.config import MatchConfig
from fi_spark.profile_checks import check_profile  # it names Config for typing only: no cycle
from fi_spark.prompting.spec import PromptExample, PromptSpec, load_prompt
from fi_spark.report.config import ReportConfig
from fi_spark.section import CONF_DIR_ENV, ConfigError, Section, conf_dirs
from fi_spark.text.config import PrepareConfig, QualityThresholds, WebConfig, WebQualityThresholds

__all__ = [
    "CONF_DIR_ENV",
    "Config",
    "ConfigError",
    "DecontamConfig",
    "EmbedConfig",
    "EngineConfig",
    "ExportConfig",
    "IndexConfig",
    "InstantiateConfig",
    "JudgeConfig",
    "LLMConfig",
    "LLM_STAGES",
    "LOCAL_MODELS",
    "LocalLLMServerConfig",
    "LocalModel",
    "MatchConfig",
    "NearDedupConfig",
    "PrepareConfig",
    "PromptExample",
    "PromptSpec",
    "QualityThresholds",
    "QueriesConfig",
    "ReportConfig",
    "Section",
    "StageLLMConfig",
    "TablesConfig",
    "TemplatesConfig",
    "TrackingConfig",
    "WebConfig",
    "WebQualityThresholds",
    "conf_dirs",
    "find_profile",
    "load_config",
    "load_prompt",
    "parse_override",
]


# --------------------------------------------------------------------------- engine, tables, tracking
class EngineConfig(Section):
    """Which Spark engine runs the jobs (see fi_spark.engine)."""

    mode: Literal["embedded", "local", "connect", "cluster"] = "embedded"
    connect_url: str | None = Field(
        default=None, description="sc://host:port for mode=connect (Databricks Connect, Spark Connect, Sail)"
    )
    local_master: str = "local[*]"
    shuffle_partitions: int = Field(default=8, ge=1)
    spark_conf: dict[str, str] = Field(default_factory=dict, description="extra Spark conf (local / cluster)")
    delta_package: str | None = Field(
        default=None,
        description="the delta-spark Maven coordinate the cluster runs (e.g. io.delta:delta-spark_2.12:3.2.0); "
        "checked against the running Spark and its Scala when the engine starts (fi_spark.profile_checks)",
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
    """MLflow tracking (fi_spark.tracking). `MLFLOW_TRACKING_URI` in the environment wins over `uri`."""

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


# --------------------------------------------------------------------------- loading
def find_profile(profile: str) -> Path:
    """A profile is a name (`local`, `databricks`, `emr`) or a path to a YAML file."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"--profile: file not found: {profile}")
    for folder in conf_dirs():
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in conf_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"--profile: no profile named {profile!r}; choose from {', '.join(known) or '(none found)'}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`prepare.chunk_tokens=512` -> (['prepare', 'chunk_tokens'], 512); values are parsed as YAML scalars."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"--set {item!r}: the key must name a section and a key, e.g. prepare.chunk_tokens=512")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def load_config(profile: str | None = "local", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build the run's Config from a profile and `--set` overrides, or raise one ConfigError."""
    data: dict[str, Any] = {}
    source = "defaults"
    if profile:
        path = find_profile(profile)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, overrides)) from None
    problems = check_profile(config)
    if problems:
        given = f", overrides {' '.join(overrides)}" if overrides else ""
        raise ConfigError(f"inconsistent configuration (profile {source}{given}): " + " ".join(problems))
    return config


def _explain(exc: ValidationError, source: str, overrides: list[str] | tuple[str, ...]) -> str:
    lines = [f"invalid configuration (profile {source}{', overrides ' + ' '.join(overrides) if overrides else ''}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            section = _section_for(err["loc"])
            known = ", ".join(sorted(section.model_fields)) if section else ""
            lines.append(f"  {key}: unknown key" + (f"; known keys: {known}" if known else ""))
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
