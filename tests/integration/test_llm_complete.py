"""`fi_spark.llm.complete` on embedded Spark against the fault-injecting server: faults, ledger, exactly-once."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from fi_spark.config import Config, EngineConfig, LLMConfig
from fi_spark.engine import Engine
from fi_spark.llm import complete
from fi_spark.llm.types import ERROR_REASONS
from fi_spark.schemas import LLM_FAILURES, LLM_RESPONSES
from fi_spark.stages.base import StageContext
from fi_spark.tables import TableStore
from fi_spark_testkit.fault_server import FAULT_KINDS, FaultServer, ServerSettings

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
FAST = {
    "request_timeout_s": 1.0,
    "connect_timeout_s": 1.0,
    "backoff_base_s": 0.02,
    "backoff_max_s": 0.2,
    "breaker_reset_s": 0.1,
    "max_retry_after_s": 1.0,
}


def make_ctx(engine: Engine, out: Path, url: str, **llm: object) -> StageContext:
    cfg = Config(
        engine=EngineConfig(shuffle_partitions=2),
        llm=LLMConfig(endpoints=[url], model="test-model", **{**FAST, **llm}),  # type: ignore[arg-type]
    )
    store = TableStore(engine.spark, str(out), "delta")
    return StageContext.for_store(engine, cfg, store, log=logging.getLogger("t"))


def requests_frame(spark: SparkSession, n: int, distinct: int) -> object:
    rows = [(f"k{i:03d}", json.dumps([{"role": "user", "content": f"question {i % distinct}"}])) for i in range(n)]
    rows.append(("bad", "this is not a JSON message list"))
    return spark.createDataFrame(rows, "key string, messages string")


def test_faults_of_every_kind_every_row_answered_once(embedded_engine: Engine, tmp_path: Path) -> None:
    """20% faults of every kind: every row gets an answer or a reasoned error, retries counted, no duplicates."""
    settings = ServerSettings(latency_ms=(2, 10), fault_rate=0.2, fault_kinds=FAULT_KINDS, retry_after_s=0.05, hang_s=3)
    with FaultServer(settings) as srv:
        ctx = make_ctx(embedded_engine, tmp_path, srv.url, concurrency=8, max_attempts=8)
        df = requests_frame(embedded_engine.spark, 120, distinct=100)
        run = complete(ctx.llm_env(), df, stage="faults", response_schema=SCHEMA)
        rows = run.results.collect()
        stats = srv.snapshot()

    assert sorted(r["key"] for r in rows) == sorted([f"k{i:03d}" for i in range(120)] + ["bad"])
    for r in rows:
        if r["error_reason"] is None:
            assert json.loads(r["parsed"])["answer"] and r["content"] is not None
        else:
            assert r["error_reason"] in ERROR_REASONS and r["error"], r
    by_key = {r["key"]: r for r in rows}
    assert by_key["bad"]["error_reason"] == "bad_request"
    assert by_key["k000"]["request_id"] == by_key["k100"]["request_id"]  # same question, one request
    assert sum(1 for r in rows if r["error_reason"] is None) >= 110

    faults = sum(n for outcome, n in stats["outcomes"].items() if outcome != "ok")
    assert faults > 0
    assert run.metrics["retries"] == faults  # every injected fault was seen and counted once
    assert run.metrics["http_calls"] == stats["requests"]
    assert run.metrics["requests"] == 101  # 100 distinct questions + the bad row, each sent once
    assert len(stats["per_request"]) == 100  # the bad row never reached the server

    ledger = ctx.store.read(LLM_RESPONSES)
    failures = ctx.store.read(LLM_FAILURES)
    assert ledger.count() + failures.count() == 101
    assert ledger.select("request_id").distinct().count() == ledger.count()


def test_warm_ledger_makes_no_http_calls(embedded_engine: Engine, tmp_path: Path) -> None:
    """A re-run answers everything from the ledger: zero HTTP calls, same answers, all marked cached."""
    with FaultServer(ServerSettings(latency_ms=(1, 3))) as srv:
        ctx = make_ctx(embedded_engine, tmp_path, srv.url)
        df = requests_frame(embedded_engine.spark, 30, distinct=30)
        first = {
            r["key"]: r["parsed"]
            for r in complete(ctx.llm_env(), df, stage="warm", response_schema=SCHEMA).results.collect()
        }
        sent = srv.snapshot()["requests"]
        again = complete(ctx.llm_env(), df, stage="warm", response_schema=SCHEMA)
        rows = again.results.collect()
        assert srv.snapshot()["requests"] == sent == 30
    assert {r["key"]: r["parsed"] for r in rows} == first
    assert all(r["cached"] for r in rows)
    assert again.metrics["http_calls"] == 0 and again.metrics["cached"] == 31


def test_new_stage_or_params_are_new_requests(embedded_engine: Engine, tmp_path: Path) -> None:
    """The same prompt under another stage or max_tokens is a different request id and is sent."""
    with FaultServer(ServerSettings()) as srv:
        ctx = make_ctx(embedded_engine, tmp_path, srv.url)
        df = requests_frame(embedded_engine.spark, 5, distinct=5)
        a = {r["key"]: r["request_id"] for r in complete(ctx.llm_env(), df, stage="s1").results.collect()}
        b = {r["key"]: r["request_id"] for r in complete(ctx.llm_env(), df, stage="s2").results.collect()}
        c = {r["key"]: r["request_id"] for r in complete(ctx.llm_env(), df, stage="s1", max_tokens=7).results.collect()}
        assert srv.snapshot()["requests"] == 15
    assert not (set(a.values()) & set(b.values())) and not (set(a.values()) & set(c.values()))


def test_transient_failures_are_sent_again_next_run(embedded_engine: Engine, tmp_path: Path) -> None:
    """Rows that failed transiently (server down) are not in the ledger and succeed on the next run."""
    ctx_down = None
    with FaultServer(ServerSettings(fault_kinds=("503",), fault_rate=1.0, retry_after_s=0)) as down:
        ctx_down = make_ctx(embedded_engine, tmp_path, down.url, max_attempts=2, breaker_failures=100)
        df = requests_frame(embedded_engine.spark, 10, distinct=10)
        failed = complete(ctx_down.llm_env(), df, stage="flaky").results.collect()
    assert {r["error_reason"] for r in failed if r["key"] != "bad"} == {"retries_exhausted"}
    assert ctx_down.store.read(LLM_RESPONSES).count() == 1  # only the (final) bad_request row
    with FaultServer(ServerSettings()) as up:
        ctx_up = make_ctx(embedded_engine, tmp_path, up.url)
        ok = complete(ctx_up.llm_env(), df, stage="flaky").results.collect()
        assert up.snapshot()["requests"] == 10
    assert all(r["error_reason"] is None for r in ok if r["key"] != "bad")
    assert ctx_up.store.read(LLM_FAILURES).count() == 10  # the first run's failures stay as history


@pytest.mark.parametrize("budget", [600])
def test_token_budget_keeps_what_was_done(embedded_engine: Engine, tmp_path: Path, budget: int) -> None:
    """With a small token budget some rows are answered, the rest are budget_exhausted and sent by a later run."""
    with FaultServer(ServerSettings()) as srv:
        ctx = make_ctx(embedded_engine, tmp_path, srv.url, token_budget=budget, concurrency=2, max_tokens=16)
        df = requests_frame(embedded_engine.spark, 40, distinct=40)
        rows = complete(ctx.llm_env(), df, stage="budget", response_schema=SCHEMA).results.collect()
        ok = [r for r in rows if r["error_reason"] is None]
        cut = [r for r in rows if r["error_reason"] == "budget_exhausted"]
        assert ok and cut and len(ok) + len(cut) == 40
        assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in ok) <= budget
        assert srv.snapshot()["requests"] == len(ok)


def test_complete_on_each_engine(any_engine, make_ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same call works on Sail (Delta) and classic local Spark (Parquet, separate Python workers)."""
    with FaultServer(ServerSettings(latency_ms=(1, 3))) as srv:
        overrides = [f"llm.endpoints=['{srv.url}']", "llm.model=test-model", "engine.shuffle_partitions=2"]
        ctx = make_ctx(any_engine, overrides, output=tmp_path / any_engine.caps.mode)
        df = requests_frame(ctx.spark, 12, distinct=12)
        rows = complete(ctx.llm_env(), df, stage="engines", response_schema=SCHEMA).results.collect()
        assert srv.snapshot()["requests"] == 12
    assert sorted((r["key"], r["error_reason"]) for r in rows) == sorted(
        [(f"k{i:03d}", None) for i in range(12)] + [("bad", "bad_request")]
    )
    assert ctx.store.read(LLM_RESPONSES).count() == 13


def test_groups_are_sent_together_to_one_endpoint_and_costs_add_up(embedded_engine: Engine, tmp_path: Path) -> None:
    """With a `group` column and 3 prefix-caching servers, each document's requests reach one server one after
    the other, so all but its first hit the prefix cache; complete's cost metrics equal the servers' counts."""
    prefix = {g: " ".join([f"doc{g}"] + [f"w{g}x{j}" for j in range(39)]) for g in range(8)}  # 40 shared words
    rows = [(f"k{g}-{t}", json.dumps([{"role": "user", "content": f"{prefix[g]} template {t} ?"}]), f"doc-{g}")
            for t in range(5) for g in range(8)]  # fmt: skip
    settings = ServerSettings(prefix_cache=True, latency_ms=(2, 4))
    with FaultServer(settings) as a, FaultServer(settings) as b, FaultServer(settings) as c:
        ctx = make_ctx(embedded_engine, tmp_path, a.url, concurrency=1, partitions=1)
        cfg = ctx.config.model_copy(
            update={"llm": ctx.config.llm.model_copy(update={"endpoints": [a.url, b.url, c.url]})}
        )
        ctx = dataclasses.replace(ctx, config=cfg)
        run = complete(
            ctx.llm_env(),
            embedded_engine.spark.createDataFrame(rows, "key string, messages string, group string"),
            stage="aff",
        )
        results = run.results.collect()
        stats = [s.snapshot() for s in (a, b, c)]
    group_of = {r["request_id"]: r["key"].split("-")[0] for r in results}
    assert len(results) == 40 and all(r["error_reason"] is None for r in results)
    for key in {k.split("-")[0] for k in group_of.values()}:
        assert len({r["endpoint"] for r in results if r["key"].startswith(key + "-")}) == 1, key
    for s in stats:  # arrival order on each server: a document's requests are contiguous
        seq = [group_of[rid] for rid in s["per_request"]]
        assert sum(1 for x, y in zip(seq, seq[1:]) if x != y) == max(len(set(seq)) - 1, 0), seq  # may get none
    assert sum(1 for s in stats if s["requests"]) >= 2
    m = run.metrics
    assert m["cached_prompt_tokens"] == sum(s["cached_tokens"] for s in stats) == 8 * 4 * 40
    assert m["cached_prompt_tokens"] == sum(r["cached_tokens"] for r in results)
    assert m["prompt_tokens"] == sum(r["prompt_tokens"] for r in results) == 40 * 43
    assert m["completion_tokens"] == sum(r["completion_tokens"] for r in results) > 0
    assert m["server_seconds"] == pytest.approx(sum(r["server_ms"] for r in results) / 1000) and m["server_seconds"] > 0
