"""`complete` with the local server (llm.endpoints empty): rows failed by a sick server are retried once after heal.

The "local server" here is the fault-injecting test server on llm.local.port, serving the local model's
name, so `complete` reuses it as a server fi-spark did not start (nothing is installed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from fi_spark.config import Config, EngineConfig, LLMConfig, LocalLLMServerConfig
from fi_spark.engine import Engine
from fi_spark.llm import complete
from fi_spark.serving import local as local_server
from fi_spark.stages.base import StageContext
from fi_spark.tables import TableStore
from fi_spark_testkit.fault_server import FaultServer, ServerSettings

# breaker_reset_s: every first attempt fails, so the endpoint's breaker opens and the rest of the rows wait for
# its probes (10 s, then doubled: ~70 s of a 72 s test at the default); the counts do not depend on it
FAST = {"request_timeout_s": 1.0, "connect_timeout_s": 1.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
        "breaker_reset_s": 0.2}  # fmt: skip


def _ctx(engine: Engine, out: Path, port: int, max_attempts: int) -> StageContext:
    local = LocalLLMServerConfig(cache_dir=str(out / "cache"), port=port)
    cfg = Config(
        engine=EngineConfig(shuffle_partitions=2),
        llm=LLMConfig(endpoints=[], local=local, max_attempts=max_attempts, **FAST),  # type: ignore[arg-type]
    )
    store = TableStore(engine.spark, str(out), "delta")
    return StageContext.for_store(engine, cfg, store, log=logging.getLogger("t"))


def _frame(spark: SparkSession, n: int) -> object:
    rows = [(f"k{i}", json.dumps([{"role": "user", "content": f"question {i}"}])) for i in range(n)]
    return spark.createDataFrame(rows, "key string, messages string")


@pytest.mark.parametrize(("healed", "expected_ok"), [(True, 6), (False, 0)])
def test_failed_rows_are_sent_once_more_after_heal(
    embedded_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, healed: bool, expected_ok: int
) -> None:
    """Every first 2 attempts fail (500): after heal() says the server answers, each row is sent once more; else not."""
    calls: list[str] = []

    def fake_heal(cfg: LocalLLMServerConfig, reason: str, logger: logging.Logger | None = None) -> bool:
        calls.append(reason)
        return healed

    monkeypatch.setattr(local_server, "ensure_healthy", fake_heal)
    settings = ServerSettings(model="smollm2-135m-instruct", fault_first_attempts=2, fault_kinds=("500",))
    with FaultServer(settings) as srv:
        ctx = _ctx(embedded_engine, tmp_path, srv.port, max_attempts=2)
        run = complete(ctx.llm_env(), _frame(embedded_engine.spark, 6), stage="heal")
        rows = run.results.collect()
        stats = srv.snapshot()
    assert calls == ["heal: 6 requests failed"]
    assert sum(r["error_reason"] is None for r in rows) == expected_ok
    assert sorted({r["error_reason"] for r in rows}, key=str) == ([None] if healed else ["retries_exhausted"])
    assert sorted(stats["per_request"].values()) == [3 if healed else 2] * 6  # the retry's first attempt passes


@pytest.mark.parametrize(("healed", "expected_ok"), [(True, 4), (False, 0)])
def test_an_injected_server_is_asked_to_heal(
    embedded_engine: Engine, tmp_path: Path, healed: bool, expected_ok: int
) -> None:
    """`complete(..., server=srv)` sends to that server (no local one is started: llm.endpoints is empty and the
    configured port is closed) and asks it, not the local server, to heal; its answer decides the resend."""
    settings = ServerSettings(fault_first_attempts=2, fault_kinds=("500",))
    with FaultServer(settings, heal_answer=healed) as srv:
        ctx = _ctx(embedded_engine, tmp_path, port=1, max_attempts=2)
        run = complete(ctx.llm_env(), _frame(embedded_engine.spark, 4), stage="inject", server=srv)
        rows = run.results.collect()
        stats = srv.snapshot()
    assert srv.heals == ["inject: 4 requests failed"] and run.model == "test-model"
    assert sum(r["error_reason"] is None for r in rows) == expected_ok
    assert sorted(stats["per_request"].values()) == [3 if healed else 2] * 4
