"""Starting the engine and building a StageContext for a bench, the way `fi-spark` itself does.

`bench_engine` starts the engine with fi_spark.engine.start_engine (as fi_spark.run.session does) and stops it on the
way out; `stage_context` is the one place a bench builds a StageContext (the table store from the run's
config, as fi_spark.run.session._engine_run opens it). `bench_config` is the local profile with tracking off (a
bench measures the stage, not the MLflow store), plus the bench's own overrides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fi_spark.config import Config, EngineConfig, load_config
from fi_spark.engine import Engine, start_engine
from fi_spark.stages.base import StageContext

log = logging.getLogger("bench")


def bench_config(*overrides: str, profile: str = "local", tracking: bool = False) -> Config:
    """The `profile` config with tracking off unless asked for, then `overrides` (SECTION.KEY=VALUE)."""
    return load_config(profile, [*([] if tracking else ["tracking.enabled=false"]), *overrides])


@contextmanager
def bench_engine(cfg: Config | EngineConfig | None = None) -> Iterator[Engine]:
    """A started engine (default: EngineConfig()'s embedded Sail), stopped when the block ends."""
    engine_cfg = cfg.engine if isinstance(cfg, Config) else (cfg or EngineConfig())
    if engine_cfg.mode == "local":  # a classic engine after Sail in one process: not through Spark Connect
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    engine = start_engine(engine_cfg)
    try:
        yield engine
    finally:
        engine.stop()


def stage_context(
    engine: Engine, config: Config, output: Path | str, work_dir: Path | str | None = None
) -> StageContext:
    """The context a stage runs in, with its tables under `output` (scratch in `work_dir`, default `output`)."""
    return StageContext.for_output(engine, config, str(output), work_dir=str(work_dir or output), log=log)
