"""SIGKILL genericize / instantiate at several points, run it again: no answered request is paid for twice.

The job runs in a subprocess (this file run as a script) against a 4-slot test server in the pytest
process, whose counters see both runs: `answered` (200s with an answer, per request id) and `unacked`
(answers the client had not yet acknowledged by sending another request on that connection, i.e. were
on the wire at the kill). fi_spark's client journals an answer before its connection can carry the next
request (fi_spark.llm.client), so every acknowledged answer must be in the journal: the re-run may send
again only unacknowledged ones, at most one per connection. The final tables must equal those of an
uninterrupted run, row for row.

Run as a script for the numbers in the report:
`python tests/integration/test_kill_resume.py --report genericize` prints answered / re-sent per kill point.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fi_spark_testkit.fault_server import FaultServer, ServerSettings

pytestmark = pytest.mark.slow

TASKS = 2
CONCURRENCY = 2  # 2 tasks x 2 connections: each connection carries many requests, so "unacked" is tight
N_QUERIES = 120
N_DOCS = 40  # x 3 templates = 120 instantiate requests
KILL_AT = (0.15, 0.5, 0.85)  # share of the requests answered when the job is killed
SETTINGS = ServerSettings(latency_ms=(20, 60), capacity=4)
TABLES = {"genericize": ("templates", "template_rejects"), "instantiate": ("pairs", "pair_rejects")}
LEDGER_COLUMNS = ("request_id", "content", "parsed", "error_reason", "prompt_tokens", "completion_tokens")


def _job(action: str, url: str, out: str) -> None:
    """The subprocess: `prepare-<stage>` writes the stage's inputs, `<stage>` runs it."""
    from fi_spark.config import load_config
    from fi_spark.engine import start_engine
    from fi_spark.genericize import genericize
    from fi_spark.ingest import ingest_queries
    from fi_spark.instantiate import instantiate
    from fi_spark.stages.base import StageContext

    cfg = load_config(
        "local",
        [
            "tracking.enabled=false", f"llm.endpoints=[{url}]", "llm.model=test-model",
            f"llm.concurrency={CONCURRENCY}", f"engine.shuffle_partitions={TASKS}",
            "templates.sample_queries=null", "instantiate.sample_pairs=null", "instantiate.prompt=instantiate.v1",
            "templates.prompt=genericize.v1", "templates.extractive_only=false",
            "near_dedup.enabled=false",  # the 40 documents share their text on purpose: keep them all
        ],
    )  # fmt: skip
    os.makedirs(out, exist_ok=True)
    engine = start_engine(cfg.engine)
    ctx = StageContext.for_output(engine, cfg, out, work_dir=out, log=logging.getLogger("job"))
    if action == "prepare-genericize":
        path = Path(out, "queries.jsonl")
        topics = ("Peru", "Chile", "rain", "the Danube", "Gustave Eiffel", "wheat", "Qantas", "Yugoslavia")
        path.write_text("".join(json.dumps({"id": str(i), "text": f"Question {i}: tell me about "
                                            f"{topics[i % len(topics)]} in year {1900 + i}?"}) + "\n"
                                for i in range(N_QUERIES)))  # fmt: skip
        ingest_queries.run(ctx, str(path))
    elif action == "prepare-instantiate":
        sys.path.insert(0, str(Path(__file__).parent))
        import pairs_inputs

        base = [text for _, text in pairs_inputs.DOCS]
        pairs_inputs.DOCS = [
            (f"doc-{i}", f"Document {i} of the kill test. {base[i % len(base)]}") for i in range(N_DOCS)
        ]
        pairs_inputs.write_inputs(ctx, Path(out), n_docs=N_DOCS)
    else:
        result = {"genericize": genericize.run, "instantiate": instantiate.run}[action](ctx)
        Path(out, f"{action}.done").write_text(json.dumps(result.metrics))
    engine.stop()


def _run(action: str, url: str, out: Path, wait: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, __file__, action, url, str(out)],
        start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    if wait:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    return proc


def _tables(spark: Any, out: Path, stage: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the stage's tables and the ledger's answer columns, sorted: what must not change."""
    from fi_spark.schemas import ALL_TABLES, LLM_RESPONSES
    from fi_spark.tables import TableStore

    store = TableStore(spark, str(out), "delta")
    found = {}
    for name in TABLES[stage]:
        rows = store.read(ALL_TABLES[name]).collect()
        found[name] = sorted(
            tuple(json.dumps(v, sort_keys=True, default=str) for v in r.asDict().values()) for r in rows
        )
    ledger = store.read(LLM_RESPONSES).select(*LEDGER_COLUMNS).collect()
    found["llm_responses"] = sorted(tuple(map(str, r)) for r in ledger)
    return found


def kill_and_resume(srv: FaultServer, stage: str, prepared: Path, out: Path, kill_at: int) -> dict[str, Any]:
    """Copy the prepared inputs, run the stage, SIGKILL it once `kill_at` requests were answered, run it again."""
    shutil.copytree(prepared, out)
    srv.reset()
    job = _run(stage, srv.url, out, wait=False)
    deadline = time.monotonic() + 300
    while sum(srv.snapshot()["answered"].values()) < kill_at:
        assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the job answered too few requests"
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)
    time.sleep(0.2)  # let the server see the closed connections
    before = srv.snapshot()
    srv.reset()
    _run(stage, srv.url, out)
    after = srv.snapshot()
    answered = set(before["answered"])
    resent = answered & set(after["per_request"])
    return {
        "answered": len(answered),
        "resent": len(resent),
        "resent_acknowledged": len(resent - set(before["unacked"])),
        "unacked": len(before["unacked"]),
        "answered_twice_in_rerun": sum(1 for n in after["answered"].values() if n > 1),
        "done": (out / f"{stage}.done").exists(),
    }


@pytest.fixture(scope="module")
def server():
    with FaultServer(SETTINGS) as srv:
        yield srv


@pytest.mark.parametrize("stage", ["genericize", "instantiate"])
def test_killed_stage_resends_no_answered_request(stage: str, server: FaultServer, spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL at 15/50/85% answered: the re-run sends again only answers on the wire at the kill (at most one
    per connection), and the final tables equal an uninterrupted run's."""
    prepared = tmp_path / "prepared"
    _run(f"prepare-{stage}", server.url, prepared)
    reference = tmp_path / "reference"
    shutil.copytree(prepared, reference)
    server.reset()
    _run(stage, server.url, reference)
    total = len(server.snapshot()["answered"])
    assert total >= 100
    expected = _tables(spark, reference, stage)
    assert expected[TABLES[stage][0]] or expected[TABLES[stage][1]]  # the stage wrote something to compare

    for share in KILL_AT:
        out = tmp_path / f"killed-{share}"
        found = kill_and_resume(server, stage, prepared, out, int(total * share))
        assert found["resent_acknowledged"] == 0, found
        assert found["resent"] <= TASKS * CONCURRENCY, found
        assert found["answered_twice_in_rerun"] == 0, found
        assert found["done"], found
        assert _tables(spark, out, stage) == expected, f"tables differ after a kill at {share:.0%}"


def report(stage: str, root: Path) -> None:
    """Print answered / re-sent per kill point (the numbers in the report), for the code on PYTHONPATH."""
    with FaultServer(SETTINGS) as srv:
        prepared = root / "prepared"
        _run(f"prepare-{stage}", srv.url, prepared)
        total = N_QUERIES if stage == "genericize" else N_DOCS * 3
        for share in KILL_AT:
            found = kill_and_resume(srv, stage, prepared, root / f"killed-{share}", int(total * share))
            print(json.dumps({"stage": stage, "kill_at": share, **found}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2], Path(sys.argv[3]))
    else:
        _job(sys.argv[1], sys.argv[2], sys.argv[3])
