"""Typed configuration: YAML profiles + CLI overrides -> one frozen `Config`, validated once.

Each section is one module of this package, composed into the one tree by fi_spark.config.model:

    engine, tables, tracking      here: they configure engine.py, tables.py and tracking.py, which
                                  import Spark or MLflow (the loader must not)
    prepare, web                  fi_spark/config/text.py (QualityThresholds, WebQualityThresholds)
    near_dedup                    fi_spark/config/dedup.py
    llm, llm.local                fi_spark/config/llm.py
    queries, templates            fi_spark/config/genericize.py
    embed                         fi_spark/config/embed.py
    index, match                  fi_spark/config/index.py
    decontam, instantiate, judge  fi_spark/config/instantiate.py
    export                        fi_spark/config/export.py
    report                        fi_spark/config/report.py

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

from fi_spark.config.decontam import DecontamConfig
from fi_spark.config.dedup import NearDedupConfig
from fi_spark.config.embed import EmbedConfig
from fi_spark.config.export import ExportConfig
from fi_spark.config.genericize import TemplatesConfig
from fi_spark.config.index import IndexConfig
from fi_spark.config.instantiate import InstantiateConfig
from fi_spark.config.judge import JudgeConfig
from fi_spark.config.llm import LOCAL_MODELS, LLMConfig, LocalLLMServerConfig, LocalModel, StageLLMConfig
from fi_spark.config.load import find_profile, load_config, parse_override
from fi_spark.config.match import MatchConfig
from fi_spark.config.model import LLM_STAGES, Config, EngineConfig, TablesConfig, TrackingConfig
from fi_spark.config.queries import QueriesConfig
from fi_spark.config.report import ReportConfig
from fi_spark.config.text import PrepareConfig, QualityThresholds, WebConfig, WebQualityThresholds
from fi_spark.prompting.spec import PromptExample, PromptSpec, load_prompt
from fi_spark.section import CONF_DIR_ENV, ConfigError, Section, conf_dirs

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
