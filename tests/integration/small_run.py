"""A small real run for the notebook and export-consumer tests: two tracked pipeline runs in one folder.

Documents go through prepare_corpus and templates and matches are written directly (pairs_inputs, as the
pair-stage tests do); then ``run_pipeline`` runs instantiate -> judge -> export with MLflow
tracking into ``<folder>/mlflow.db``, the LLM stages pointed at the scripted test server of
test_pairs_stages (grounded answers, varied judge scores) with 500s and 429s injected on some attempts.
The first run has two documents; the second adds two more (the Danube one gets ungrounded answers) and
lowers ``judge.threshold`` to 2, so the folder holds two MLflow pipeline runs that differ and Delta
tables with two versions. ``shared_run`` builds it once per test session for every module that reads it
(the readers never write to it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from unittest import mock

import pytest
from pairs_inputs import write_inputs  # helper modules beside this file
from test_pairs_stages import ScriptedServer

from fi_spark.config import load_config
from fi_spark.engine import Engine
from fi_spark.run.pipeline import run_pipeline
from fi_spark.run.tracking import Tracker
from fi_spark.stages.base import StageContext
from fi_spark.stages.registry import PipelineInputs
from fi_spark_testkit.fault_server import ServerSettings

STAGES = ["instantiate", "judge", "export"]
FAULTS = ServerSettings(fault_rate=0.15, fault_kinds=("500", "429"), retry_after_s=0.05, seed=13)
RUNS = ((2, "judge.threshold=3"), (4, "judge.threshold=2"))  # (documents, the override that differs)


def run_overrides(server_url: str, extra: str) -> list[str]:
    """The config of one run: the local profile against the test server, small shards, a validation split, no
    token budget on the final view (so the exported pairs are exactly those at or above the judge threshold)."""
    return [
        f"llm.endpoints=[{server_url}]",
        "llm.model=test-model",
        "llm.backoff_base_s=0.05",
        "engine.shuffle_partitions=2",
        "export.rows_per_shard=2",
        "export.validation_fraction=0.3",
        "export.licenses={documents.jsonl: CC BY-SA 3.0}",
        "match.token_budget=null",  # as in test_pairs_stages: the budget has its own test there
        "instantiate.prompt=instantiate.v1",
        "templates.prompt=genericize.v1",
        "templates.extractive_only=false",  # the prompts the test servers' scripted answers fit
        "judge.prompt=judge.v2",
        extra,
    ]


_BUILT: dict[int, Path] = {}


def shared_run(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small run, built on first use in this session and shared by its (read-only) users."""
    if id(engine) not in _BUILT:
        _BUILT[id(engine)] = build_small_run(engine, tmp_path_factory.mktemp("small-run") / "run")
    return _BUILT[id(engine)]


def build_small_run(engine: Engine, folder: Path) -> Path:
    """Both pipeline runs into `folder` (on the caller's embedded engine); returns `folder`."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    folder.mkdir(parents=True, exist_ok=True)
    with ScriptedServer(FAULTS) as server, mock.patch.dict(os.environ):
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # track into the run folder, whatever the caller's setting
        for n_docs, extra in RUNS:
            config = load_config("local", run_overrides(server.url, extra))
            work = folder / "_work"
            work.mkdir(exist_ok=True)
            ctx = StageContext.for_output(
                engine, config, str(folder), work_dir=str(work), log=logging.getLogger("test")
            )
            write_inputs(ctx, folder, n_docs=n_docs)
            run_pipeline(ctx, Tracker(config, str(folder)), PipelineInputs(), only=STAGES)
    return folder
