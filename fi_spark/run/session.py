"""Opening and closing a run: engine, table store and stage context, and tracking each stage.

The CLI, the jobs and notebooks all go through ``open_run`` so a run looks the same whichever
entry point started it. ``open_run`` first takes the output folder's run lock (fi_spark.run.lock: one live
run per output folder; Delta's optimistic concurrency covers single table commits, not the LLM journal
fold, Parquet tables or ``_work``), and releases it on the way out, also on exceptions. The resolved
configuration goes to the debug log (`-v`) and to MLflow (fi_spark.run.tracking: params and a config.yaml
artifact), redacted (secrets and URL credentials), not into every command's log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from fi_spark import storage
from fi_spark.catalog import Catalog
from fi_spark.config import Config
from fi_spark.engine import start_engine
from fi_spark.errors import LLMFailureError
from fi_spark.run.lock import RunLock
from fi_spark.run.tracking import DatasetRef, Tracker, redact_config
from fi_spark.run.tracking_store import resolve_tracking_uri
from fi_spark.stages.base import StageContext, StageResult, StageTables
from fi_spark.stages.registry import PipelineInputs, StageSpec, stage

log = logging.getLogger("fi_spark")


@contextmanager
def open_run(config: Config, output: str) -> Iterator[tuple[StageContext, Tracker]]:
    """Lock the output folder, start the engine, resolve the table format, open tracking; undo all on the way out.

    A second run on an output folder a live run holds raises ``RunLockedError`` (a ConfigError) before
    anything starts.
    """
    if config.tracking.enabled:
        resolve_tracking_uri(config, output)  # a store that would be thrown away: refused before anything starts
    if not storage.is_remote(output):
        output = storage.local_path(output)
        os.makedirs(output, exist_ok=True)
    with RunLock(output) as lock:
        if log.isEnabledFor(logging.DEBUG):  # -v; every run stores it in MLflow (params + config.yaml)
            flat = redact_config(config.to_flat_dict())
            log.debug("resolved configuration:\n%s", "\n".join(f"  {k} = {v}" for k, v in flat.items()))
        tracker = Tracker(config, output, lock.info)
        with _engine_run(config, output, tracker) as opened:
            yield opened


@contextmanager
def _engine_run(config: Config, output: str, tracker: Tracker) -> Iterator[tuple[StageContext, Tracker]]:
    engine = start_engine(config.engine)
    try:
        remote = storage.is_remote(output)
        work_dir = tempfile.mkdtemp(prefix="fi-spark-") if remote else os.path.join(output, "_work")
        os.makedirs(work_dir, exist_ok=True)
        ctx = StageContext.for_output(engine, config, output, work_dir=work_dir, log=log)
        store = ctx.store
        log.info(
            "output %s (tables as %s%s)",
            output,
            store.fmt,
            f", managed in {store.managed_in}" if store.managed_in else "",
        )
        Catalog.of(ctx).register_existing()  # an earlier run's tables by name (and a name clash) before any work
        yield ctx, tracker
    finally:
        engine.stop()


def module(spec: StageSpec) -> ModuleType:
    """The stage's code (imported when it runs or its declaration is read: pyspark comes with it)."""
    return importlib.import_module(spec.module)


def declared(spec: StageSpec) -> StageTables:
    """The stage's declared reads and writes (its module's ``TABLES``)."""
    tables: StageTables = module(spec).TABLES
    return tables


def run_stage(
    tracker: Tracker,
    name: str,
    fn: Callable[[], StageResult],
    ctx: StageContext | None = None,
    inputs: PipelineInputs | None = None,
) -> StageResult:
    """Run one stage inside its own (nested, when a pipeline run is active) MLflow run and log its result,
    and with `ctx`, its datasets (`stage_datasets`)."""
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
        if ctx is not None and tracker.enabled:
            tracker.log_datasets(stage_datasets(ctx, name, inputs or PipelineInputs(), result))
    log.info("stage %s", result.summary())
    for table, added in sorted(result.tables.items()):
        log.info("  table %-14s +%d rows", table, added)
    return result


def stage_datasets(ctx: StageContext, name: str, inputs: PipelineInputs, result: StageResult) -> list[DatasetRef]:
    """The stage's input files (`--documents` / `--queries`: the records it read, a fingerprint of the file
    listing) and the output folder (rows now in each table the stage writes, a fingerprint of those counts)."""
    spec = stage(name)
    refs = []
    files = {f.name for f in dataclasses.fields(PipelineInputs)}  # "layout" (export, report) is no dataset
    for field in (f for f in spec.inputs if f in files):
        given = getattr(inputs, field)
        paths = [given] if given else list(ctx.config.queries.inputs if field == "queries" else [])
        if paths:
            refs.append(DatasetRef(field, ",".join(paths), result.rows_in, listing_digest(paths)))
    rows = {t.name: ctx.store.count(t) for t in declared(spec).writes}
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    refs.append(DatasetRef("output", ctx.output, sum(rows.values()), digest, {"tables": rows}))
    return refs


def listing_digest(paths: list[str]) -> str:
    """16 hex of sha256 over each input file's path (below the files' common folder) and size: the same files
    give the same digest wherever they are copied, without reading them; "unlisted" where listing fails."""
    from fi_spark.ingest.documents import list_input_files

    digest = hashlib.sha256()
    try:
        for path in paths:
            files = list_input_files(path)
            fs, _ = storage.filesystem(files[0])
            infos = fs.get_file_info([storage.filesystem(f)[1] for f in files])
            prefix = len(os.path.dirname(os.path.commonprefix(files)))
            for file, info in zip(files, infos, strict=True):
                digest.update(f"{file[prefix:]}\t{info.size}\n".encode())
    except Exception as exc:  # noqa: BLE001 - a store pyarrow cannot list (dbfs:/): the dataset is logged anyway
        log.debug("could not list %s for its digest: %s", paths, exc)
        return "unlisted"
    return digest.hexdigest()[:16]
