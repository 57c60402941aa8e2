"""Failures that fail and progress you can watch: a dead endpoint, a stage whose every request failed, and the
progress lines of a send step (issue #20 items 4 and 5)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from fi_spark.engine import Engine
from fi_spark.errors import LLMFailureError
from fi_spark.genericize import genericize
from fi_spark.ingest import ingest_queries
from fi_spark.schemas import LLM_FAILURES
from fi_spark.stages.base import StageContext
from fi_spark_testkit.fault_server import FaultServer, ServerSettings
from tests.integration.test_cli_and_jobs import run_cli
from tests.unit.test_llm_failure_budget import closed_port_url

QUERIES = ["What is the capital of Peru?", "Tell me the history of Yugoslavia.", "Write a haiku about rain."]


def test_genericize_against_a_dead_endpoint_exits_in_one_line(tmp_path: Path):
    """A closed port: `fi-spark genericize` exits 3 with one line naming the endpoint, before starting Spark."""
    url = closed_port_url()
    out = run_cli("genericize", "--output", str(tmp_path / "o"), "--set", f"llm.endpoints=[{url}]",
                  "--set", "tracking.enabled=false", timeout=120)  # fmt: skip
    assert out.returncode == 3, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("fi-spark: error: ")]
    assert errors == [
        f"fi-spark: error: llm.endpoints: no endpoint answered GET /models ({url}: connection refused); check that "
        "the server is running and reachable from the driver and the workers, or fix llm.endpoints; nothing was sent"
    ]
    assert "engine" not in out.stderr  # refused before any Spark work


def _queries(ctx: StageContext, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i), "text": q}) for i, q in enumerate(QUERIES)) + "\n")
    ingest_queries.run(ctx, str(path))


def test_every_request_failing_fails_the_stage_after_storing(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path
) -> None:
    """A server answering 500 to everything: genericize raises LLMFailureError (the counts attached) after the
    transient failures reached the ledger's llm_failures; nothing is stored as a reject, so a re-run resends."""
    with FaultServer(ServerSettings(fault_rate=1.0, fault_kinds=("500",))) as srv:
        ctx = make_ctx(embedded_engine, [f"llm.endpoints=[{srv.url}]", "llm.model=test-model", "llm.max_attempts=1",
                                         "templates.sample_queries=null", "llm.progress_s=0"])  # fmt: skip
        _queries(ctx, tmp_path)
        with pytest.raises(LLMFailureError) as err:
            genericize.run(ctx)
    result = err.value.result
    assert (result.rows_in, result.rows_out, result.rejected) == (3, 0, {"llm_retries_exhausted": 3})
    assert str(err.value).startswith(f"genericize: all 3 rows failed at {srv.url} (llm_retries_exhausted=3) (e.g. ")
    assert ctx.store.read(LLM_FAILURES).count() == 3


def test_send_step_logs_progress_lines(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A send step longer than llm.progress_s logs `llm genericize: N/3 requests done ...` lines with an ETA."""
    with FaultServer(ServerSettings(latency_ms=(700.0, 700.0))) as srv:
        ctx = make_ctx(embedded_engine, [f"llm.endpoints=[{srv.url}]", "llm.model=test-model", "llm.concurrency=1",
                                         "llm.partitions=1", "templates.sample_queries=null", "llm.progress_s=0.3",
                                         "llm.max_failed_share=1.0"])  # fmt: skip
        _queries(ctx, tmp_path)
        with caplog.at_level(logging.INFO, logger=ctx.log.name):
            genericize.run(ctx)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("llm genericize: ")]
    progress = [line for line in lines if "requests done" in line]
    assert "llm genericize: sending 3 requests to " + srv.url in lines
    assert progress and all("/3 requests done" in line and "requests/s" in line for line in progress), lines
    assert any(" ETA " in line for line in progress), progress
