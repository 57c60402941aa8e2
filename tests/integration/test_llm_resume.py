"""Kill a running LLM job mid-way, run it again: only missing requests are sent, each lands exactly once.

The job runs in a subprocess (this file run as a script) against a test server in the pytest process,
so the server's per-request counters see both runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

from fi_spark.llm.journal import list_files, read_rows
from fi_spark.schemas import LLM_RESPONSES
from fi_spark.tables import TableStore
from fi_spark_testkit.fault_server import FaultServer, ServerSettings

N = 160
CONCURRENCY = 4
TASKS = 2


def run_job(url: str, out: str) -> None:
    """The job: N requests through `complete`, 2 tasks x 4 in flight, every answer journaled as it arrives."""
    from fi_spark.config import Config, EngineConfig, LLMConfig
    from fi_spark.engine import start_engine
    from fi_spark.llm import complete
    from fi_spark.stages.base import StageContext

    cfg = Config(
        engine=EngineConfig(shuffle_partitions=TASKS),
        llm=LLMConfig(endpoints=[url], model="test-model", concurrency=CONCURRENCY),
    )
    engine = start_engine(cfg.engine)
    ctx = StageContext.for_store(engine, cfg, TableStore(engine.spark, out, "delta"), log=logging.getLogger("job"))
    rows = [(f"k{i}", json.dumps([{"role": "user", "content": f"q{i}"}])) for i in range(N)]
    run = complete(ctx.llm_env(), engine.spark.createDataFrame(rows, "key string, messages string"), stage="resume")
    Path(out, "done.json").write_text(json.dumps(run.metrics))
    engine.stop()


def _start(url: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fi_spark_testkit: not installed
    return subprocess.Popen([sys.executable, __file__, url, str(out)], start_new_session=True, env=env)


def test_killed_job_resumes_without_resending(spark: SparkSession, tmp_path: Path) -> None:
    """SIGKILL mid-run, re-run: answers journaled before the kill are not sent again; ledger has each id once."""
    out = tmp_path / "out"
    journal = str(out / "llm_journal" / "resume")
    with FaultServer(ServerSettings(latency_ms=(100, 200))) as srv:
        job = _start(srv.url, out)
        deadline = time.monotonic() + 120
        while len(_journaled(journal)) < 24:
            assert job.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "no journal files appeared"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        files = [f for run_files in list_files(journal).values() for f in run_files]
        saved = {row["request_id"] for f in files for row in read_rows(f)}
        sent_before = srv.snapshot()["requests"]
        assert 0 < len(saved) < N and not (out / "done.json").exists()

        rerun = _start(srv.url, out)
        assert rerun.wait(180) == 0
        stats = srv.snapshot()

    counts = stats["per_request"]
    assert len(counts) == N
    assert all(counts[rid] == 1 for rid in saved)  # journaled before the kill: never sent again
    # sent again = exactly what was sent but not journaled: at most the requests in flight at the kill
    resent = sum(counts.values()) - N
    assert resent == sent_before - len(saved) <= TASKS * CONCURRENCY
    ledger = TableStore(spark, str(out), "delta").read(LLM_RESPONSES)
    assert ledger.count() == N == ledger.select("request_id").distinct().count()
    assert ledger.filter("error_reason IS NOT NULL").count() == 0
    metrics = json.loads((out / "done.json").read_text())
    assert metrics["rows"] == N and metrics["ok"] == N and metrics["cached"] >= len(saved)
    assert list_files(journal) == {}  # folded and cleaned up


def _journaled(root: str) -> list[str]:
    return [row["request_id"] for files in list_files(root).values() for f in files for row in read_rows(f)]


def test_task_retry_skips_what_its_failed_attempt_journaled(tmp_path: Path) -> None:
    """A Spark task that dies mid-partition and is retried in the same run sends only the requests its first
    attempt had not answered (the journal of that partition is read first); answers are journaled once."""
    import pandas as pd

    from fi_spark.config import LLMConfig
    from fi_spark.llm.task import CallSpec, send_partition
    from fi_spark.llm.types import Sampling

    spec = CallSpec(
        cfg=LLMConfig(concurrency=2), model="test-model", stage="retry", endpoints=(), sampling=Sampling(max_tokens=8),
        schema=None, schema_name="answer", run_id="run-1", journal_root=str(tmp_path / "journal"), task_budget=None,
    )  # fmt: skip
    rows = pd.DataFrame({"request_id": [f"r{i:02d}" for i in range(30)], "prompt": None, "group": None,
                         "messages": [json.dumps([{"role": "user", "content": f"q{i}"}]) for i in range(30)],
                         "_partition": 3})  # fmt: skip

    def dying() -> object:
        yield rows.iloc[:20]
        raise RuntimeError("executor lost")

    with FaultServer(ServerSettings(latency_ms=(5, 10))) as srv:
        spec = dataclasses.replace(spec, endpoints=(srv.url,))
        try:
            list(send_partition(spec, dying()))  # type: ignore[arg-type]
        except RuntimeError:
            pass
        journaled = set(_journaled(spec.journal_root))
        first = srv.snapshot()
        (summary,) = list(send_partition(spec, iter([rows.iloc[:15], rows.iloc[15:]])))
        second = srv.snapshot()
    resumed = int(summary["resumed"].iloc[0])
    assert 0 < len(journaled) < 20
    assert resumed == len(journaled)
    assert all(second["per_request"][rid] == 1 for rid in journaled)  # never sent again
    assert set(second["per_request"]) == set(rows["request_id"])
    resent = sum(second["per_request"].values()) - 30
    assert resent == first["requests"] - len(journaled)  # only what the dead attempt had not answered
    assert sorted(_journaled(spec.journal_root)) == sorted(rows["request_id"])  # every request journaled once


if __name__ == "__main__":
    run_job(sys.argv[1], sys.argv[2])
