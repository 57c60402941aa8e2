"""Opening and closing a run: engine, table store and stage context, and tracking each stage.

The CLI, the jobs and notebooks all go through ``open_run`` so a run looks the same whichever
entry point started it. ``open_run`` first takes the output folder's run lock (fi_spark.runlock: one live
run per output folder; Delta's optimistic concurrency covers single table commits, not the LLM journal
fold, Parquet tables or ``_work``), and releases it on the way out, also on exceptions. The resolved
configuration goes to the debug log (`-v`) and to MLflow (fi_spark.tracking: params and a config.yaml
artifact), redacted (secrets and URL credentials), not into every command's log.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fi_spark import storage
from fi_spark.config import Config
from fi_spark.engine import start_engine
from fi_spark.errors import LLMFailureError
from fi_spark.runlock import RunLock
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.tables import TableStore, resolve_format
from fi_spark.tracking import Tracker, redact_config

log = logging.getLogger("fi_spark")


@contextmanager
def open_run(config: Config, output: str) -> Iterator[tuple[StageContext, Tracker]]:
    """Lock the output folder, start the engine, resolve the table format, open tracking; undo all on the way out.

    A second run on an output folder a live run holds raises ``RunLockedError`` (a ConfigError) before
    anything starts.
    """
    if not storage.is_remote(output):
        output = storage.local_path(output)
        os.makedirs(output, exist_ok=True)
    with RunLock(output):
        if log.isEnabledFor(logging.DEBUG):  # -v; every run stores it in MLflow (params + config.yaml)
            flat = redact_config(config.to_flat_dict())
            log.debug("resolved configuration:\n%s", "\n".join(f"  {k} = {v}" for k, v in flat.items()))
        tracker = Tracker(config, output)
        with _engine_run(config, output, tracker) as opened:
            yield opened


@contextmanager
def _engine_run(config: Config, output: str, tracker: Tracker) -> Iterator[tuple[StageContext, Tracker]]:
    engine = start_engine(config.engine)
    try:
        fmt = resolve_format(config.tables, engine.caps)
        store = TableStore(engine.spark, output, fmt)
        remote = storage.is_remote(output)
        work_dir = tempfile.mkdtemp(prefix="fi-spark-") if remote else os.path.join(output, "_work")
        os.makedirs(work_dir, exist_ok=True)
        ctx = StageContext(engine.spark, engine, config, store, output, log, work_dir)
        log.info("output %s (tables as %s)", output, fmt)
        yield ctx, tracker
    finally:
        engine.stop()


def run_stage(tracker: Tracker, name: str, fn: Callable[[], StageResult]) -> StageResult:
    """Run one stage inside its own (nested, when a pipeline run is active) MLflow run and log its result."""
    log.info("stage %s: starting", name)
    with tracker.run(name, nested=True, tags={"fi_spark.stage": name}):
        try:
            result = fn()
        except LLMFailureError as exc:  # the stage wrote what it could: its counts belong in the (failed) run
            if isinstance(exc.result, StageResult):
                tracker.log_result(exc.result)
                log.info("stage %s", exc.result.summary())
            raise
        tracker.log_result(result)
    log.info("stage %s", result.summary())
    for table, added in sorted(result.tables.items()):
        log.info("  table %-14s +%d rows", table, added)
    return result
