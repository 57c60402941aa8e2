"""Kill a running LLM job mid-way, run it again: only missing requests are sent, each lands exactly once.

The job runs in a subprocess (this file run as a script) against a test server in the pytest process,
so the server's per-request counters see both runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from fi_spark.llm.journal import list_files
from fi_spark.llm.testserver import ServerSettings, TestServer
from fi_spark.schemas import LLM_RESPONSES
from fi_spark.tables import TableStore

N = 160
CONCURRENCY = 4
TASKS = 2
FLUSH_ROWS = 4


def run_job(url: str, out: str) -> None:
    """The job: N requests through `complete`, 2 tasks x 4 in flight, journal flushed every 4 answers."""
    from fi_spark.config import Config, EngineConfig, LLMConfig
    from fi_spark.engine import start_engine
    from fi_spark.llm import complete
    from fi_spark.stages.base import StageContext

    cfg = Config(
        engine=EngineConfig(shuffle_partitions=TASKS),
        llm=LLMConfig(endpoints=[url], model="test-model", concurrency=CONCURRENCY, journal_flush_rows=FLUSH_ROWS),
    )
    engine = start_engine(cfg.engine)
    ctx = StageContext(engine.spark, engine, cfg, TableStore(engine.spark, out, "delta"), out, logging.getLogger("job"))
    rows = [(f"k{i}", json.dumps([{"role": "user", "content": f"q{i}"}])) for i in range(N)]
    run = complete(ctx.llm_env(), engine.spark.createDataFrame(rows, "key string, messages string"), stage="resume")
    Path(out, "done.json").write_text(json.dumps(run.metrics))
    engine.stop()


def _start(url: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, url, str(out)], start_new_session=True)


def test_killed_job_resumes_without_resending(spark: SparkSession, tmp_path: Path) -> None:
    """SIGKILL mid-run, re-run: answers journaled before the kill are not sent again; ledger has each id once."""
    out = tmp_path / "out"
    journal = str(out / "llm_journal" / "resume")
    with TestServer(ServerSettings(latency_ms=(100, 200))) as srv:
        job = _start(srv.url, out)
        deadline = time.monotonic() + 120
        while sum(len(f) for f in list_files(journal).values()) < 6:
            assert job.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "no journal files appeared"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        files = [f for run_files in list_files(journal).values() for f in run_files]
        saved = {rid for f in files for rid in pq.read_table(f)["request_id"].to_pylist()}
        sent_before = srv.snapshot()["requests"]
        assert 0 < len(saved) < N and not (out / "done.json").exists()

        rerun = _start(srv.url, out)
        assert rerun.wait(180) == 0
        stats = srv.snapshot()

    counts = stats["per_request"]
    assert len(counts) == N
    assert all(counts[rid] == 1 for rid in saved)  # journaled before the kill: never sent again
    # sent again = exactly what was sent but not journaled: in flight or not yet flushed at the kill
    resent = sum(counts.values()) - N
    assert resent == sent_before - len(saved) <= TASKS * (CONCURRENCY + FLUSH_ROWS - 1)
    ledger = TableStore(spark, str(out), "delta").read(LLM_RESPONSES)
    assert ledger.count() == N == ledger.select("request_id").distinct().count()
    assert ledger.filter("error_reason IS NOT NULL").count() == 0
    metrics = json.loads((out / "done.json").read_text())
    assert metrics["rows"] == N and metrics["ok"] == N and metrics["cached"] >= len(saved)
    assert list_files(journal) == {}  # folded and cleaned up


if __name__ == "__main__":
    run_job(sys.argv[1], sys.argv[2])
