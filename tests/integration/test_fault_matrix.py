"""The fault matrix: genericize (the stage, through its registry entry) against a faulty LLM server or output disk.

For each fault class the stage must finish with every row accounted -- rows in = templates + stored rejects
+ transient LLM failures counted by reason -- and a re-run after the fault clears must send only the rows
that had no answer, never an answered request again (the test server's per-request counters show it), and
end with the same tables as an uninterrupted run. A full output disk must instead stop the stage with one
clear line (fi_spark.errors.OutputFullError) and resume from where it stopped once space is back; that case
fills a real 4 MB tmpfs, so it needs root (`mount`) and is skipped elsewhere (tests/unit/test_disk_full_errors.py
checks the message mapping everywhere).

Already covered elsewhere, not repeated here: one fault of each kind retried by the client
(tests/unit/test_llm_client.py), `complete` under 20% mixed faults and a server down for a whole call
(tests/integration/test_llm_complete.py), SIGKILL mid-call (test_llm_resume.py) and mid-stage
(test_kill_resume.py), a Spark task retry (test_llm_resume.py), a dead local vLLM server (test_llm_local_heal.py).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fi_spark.config import load_config
from fi_spark.engine import Engine
from fi_spark.errors import OutputFullError
from fi_spark.ingest import ingest_queries
from fi_spark.llm.journal import list_files, read_rows
from fi_spark.run.pipeline import run_spec
from fi_spark.schemas import LLM_RESPONSES, TEMPLATE_REJECTS, TEMPLATES
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.stages.llm_stage import NOT_STORED
from fi_spark.stages.registry import stage
from fi_spark.tables import TableStore
from fi_spark_testkit.fault_server import FaultServer, ServerSettings

pytestmark = pytest.mark.slow

N_QUERIES = 24
DISHES = ("risotto", "ramen", "paella", "goulash", "borscht", "tagine", "pho", "moussaka")
STYLES = ("slowly", "quickly", "cheaply", "simply")
DESC = "A recipe page that explains how to cook a dish at home, step by step, with the ingredients it needs."
LLM = [
    "llm.model=test-model", "llm.concurrency=4", "llm.max_attempts=3", "llm.schema_retries=1",
    "llm.request_timeout_s=2", "llm.connect_timeout_s=1", "llm.backoff_base_s=0.02", "llm.backoff_max_s=0.1",
    "llm.breaker_reset_s=0.1", "llm.max_retry_after_s=0.3", "llm.request_deadline_s=20",
    "templates.sample_queries=null", "engine.shuffle_partitions=2",
    "llm.max_failed_share=1.0",  # these cases check recovery and accounting; the failure budget has its own test
    "templates.prompt=genericize.v1", "templates.extractive_only=false",  # what TemplateServer answers
]  # fmt: skip


def query(i: int) -> str:
    return f"how do I cook {DISHES[i % len(DISHES)]} {STYLES[i // len(DISHES) % len(STYLES)]} at home?"


class TemplateServer(FaultServer):
    """Answers each genericize request with a valid template of its query; every 6th has a repeated slot
    (a stored reject, so the matrix also shows stored rejects are never sent again)."""

    def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
        out = super()._answer(chat, req, rid, bad)
        if bad:
            return out
        text = str(req["messages"][-1]["content"]).removeprefix("Query: ")
        dish, style = text.split()[4:6]
        i = DISHES.index(dish) + len(DISHES) * STYLES.index(style)
        slot = "<fi>a place like home</fi>"  # dish and style stay literal: no two queries merge into one template
        template = f"how do I cook {dish} {style} at {slot}" + (f" or {slot}?" if i % 6 == 5 else "?")
        answer = {"template": template, "compatible_document_description": DESC}
        out["choices"][0]["message"]["content"] = json.dumps(answer)
        return out


@pytest.fixture(scope="module")
def engine(_embedded: Engine) -> Engine:
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    return _embedded


def make_ctx(engine: Engine, out: Path, url: str, extra: tuple[str, ...] = ()) -> StageContext:
    config = load_config("local", ["tracking.enabled=false", f"llm.endpoints=[{url}]", *LLM, *extra])
    return StageContext.for_output(engine, config, str(out), work_dir=str(out), log=logging.getLogger("faults"))


@pytest.fixture(scope="module")
def prepared(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder holding the `queries` table (ingested once, copied by every case)."""
    out = tmp_path_factory.mktemp("prepared")
    path = out.parent / "queries.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i:02d}", "text": query(i)}) + "\n" for i in range(N_QUERIES)))
    ingest_queries.run(make_ctx(engine, out, "http://127.0.0.1:9/v1"), str(path))
    return out


def genericize(ctx: StageContext) -> StageResult:
    return run_spec(stage("genericize"), ctx)


def tables(ctx: StageContext) -> dict[str, list[str]]:
    """Every row of templates and template_rejects plus the ledger's answers, as sorted JSON: what must match."""
    found = {}
    for spec in (TEMPLATES, TEMPLATE_REJECTS):
        rows = ctx.store.read(spec).drop("request_id").collect()
        found[spec.name] = sorted(json.dumps(r.asDict(), sort_keys=True, default=str) for r in rows)
    ledger = ctx.store.read(LLM_RESPONSES).select("request_id", "parsed", "error_reason").collect()
    found["llm_responses"] = sorted(json.dumps(r.asDict(), sort_keys=True) for r in ledger)
    return found


@pytest.fixture(scope="module")
def reference(engine: Engine, prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run without faults: its counts and tables are what every case must end with."""
    out = tmp_path_factory.mktemp("reference") / "out"
    shutil.copytree(prepared, out)
    with TemplateServer() as srv:
        ctx = make_ctx(engine, out, srv.url)
        result = genericize(ctx)
        assert srv.snapshot()["requests"] == N_QUERIES
    return {"result": result, "tables": tables(ctx), "outcomes": outcomes(ctx)}


def test_reference_run(reference: dict[str, Any]) -> None:
    """Without faults: 20 templates and 4 stored rejects (repeated slots), one request per query."""
    result = reference["result"]
    assert (result.rows_in, result.rows_out, result.rejected) == (N_QUERIES, 20, {"repeated_slot": 4})


@dataclass(frozen=True)
class Fault:
    """One fault class: the server's settings while it lasts and the retry causes it must show."""

    settings: ServerSettings
    causes: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    lasts_s: float | None = None  # clears by itself this long after the first request (else: for the first run)


FAULTS = {
    # 60% of attempts answered 429 + Retry-After 0.2 s: rows whose 3 attempts all meet one wait for the next run
    "429_storm": Fault(ServerSettings(fault_rate=0.6, fault_kinds=("429",), retry_after_s=0.2), ("http_429",)),
    "5xx_storm": Fault(ServerSettings(fault_rate=0.6, fault_kinds=("500", "503"), retry_after_s=0.05), ("http_5xx",)),
    # every attempt fails for 1.5 s, then the server recovers: the breaker holds requests back instead of burning
    # their attempts, so most rows ride the burst out in the same run
    "5xx_burst": Fault(ServerSettings(fault_rate=1.0, fault_kinds=("500", "503"), retry_after_s=0.05), ("http_5xx",),
                       lasts_s=1.5),
    "timeouts": Fault(ServerSettings(fault_rate=0.5, fault_kinds=("timeout",), hang_s=3.0), ("timeout",),
                      ("llm.concurrency=12",)),  # all 24 in flight at once: the 2 s timeouts overlap
    # an HTML 200, a 200 whose content is not JSON, a body cut in half: the first and last are transport failures
    # (retried, transient), bad content is the model's answer (schema_retries, then a final stored llm_not_json)
    "garbled": Fault(ServerSettings(fault_rate=0.5, fault_kinds=("not_json", "bad_content", "truncate")),
                     ("bad_body", "not_json", "disconnect")),
}  # fmt: skip


def outcomes(ctx: StageContext) -> dict[str, str]:
    """query id -> its template id, or `reject:<reason>` for a stored reject."""
    found = {}
    for row in ctx.store.read(TEMPLATES).select("template_id", "source_query_ids").collect():
        found.update(dict.fromkeys(row.source_query_ids, row.template_id))
    for row in ctx.store.read(TEMPLATE_REJECTS).select("source_key", "reason").collect():
        found[row.source_key] = f"reject:{row.reason}"
    return found


def split(result: StageResult) -> tuple[int, int]:
    """(rows counted as transient LLM failures, rows stored as LLM rejects) of a result."""
    transient = sum(n for reason, n in result.rejected.items() if reason in NOT_STORED)
    final = sum(n for reason, n in result.rejected.items() if reason.startswith("llm_") and reason not in NOT_STORED)
    return transient, final


def check_first_run(result: StageResult, ctx: StageContext, stats: dict[str, Any]) -> set[str]:
    """The faulty run's invariants; returns the request ids the server answered."""
    assert result.rows_in == N_QUERIES and result.accounting_ok
    transient, final = split(result)
    answered = {rid for rid, n in stats["answered"].items() if n}
    assert N_QUERIES - len(answered) == transient + final  # a row without an answer: a counted transient or a reject
    assert not {r.reason for r in ctx.store.read(TEMPLATE_REJECTS).collect()} & set(NOT_STORED)
    return answered


def check_rerun(result: StageResult, before: dict[str, Any], after: dict[str, Any], expected: int) -> set[str]:
    """The re-run after the fault cleared: exactly `expected` rows pending, each sent once, none left over.
    Returns the request ids it sent."""
    assert (result.rows_in, split(result)[0]) == (expected, 0) and result.accounting_ok
    sent = Counter(after["per_request"]) - Counter(before["per_request"])
    assert sum(sent.values()) == len(sent) == expected
    return set(sent)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_class(name: str, engine: Engine, prepared: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    """Under each fault class every row is accounted (out + stored rejects + transient counts); the re-run after
    the fault clears sends only the rows without an answer, once each, and ends with the reference tables."""
    fault = FAULTS[name]
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    with TemplateServer(fault.settings) as srv:
        if fault.lasts_s is not None:
            threading.Thread(target=clear_after_first_request, args=(srv, fault.lasts_s), daemon=True).start()
        ctx = make_ctx(engine, out, srv.url, fault.overrides)
        first = genericize(ctx)
        stats = srv.snapshot()
        srv.settings = ServerSettings()  # the fault clears (if it had not by itself)
        faults = sum(n for outcome, n in stats["outcomes"].items() if outcome != "ok")
        assert first.metrics["llm.retries"] == faults  # every injected fault seen and counted once
        assert all(first.metrics.get(f"llm.retries.{cause}", 0) > 0 for cause in fault.causes), first.metrics
        answered = check_first_run(first, ctx, stats)
        assert max(stats["answered"].values()) == 1  # no request was answered twice
        transient, final = split(first)
        if fault.lasts_s is None:
            assert transient > 0  # the fault left rows for the next run (the ids are fixed, so this is fixed too)

        second = genericize(ctx)
        after = srv.snapshot()
        assert not check_rerun(second, stats, after, transient) & answered
        third = genericize(ctx)
        assert third.rows_in == 0 and srv.snapshot()["requests"] == after["requests"]

    expected = reference["outcomes"]
    found = outcomes(ctx)
    stored_llm_rejects = {q for q, o in found.items() if o.startswith("reject:llm_")}
    assert len(stored_llm_rejects) == final and set(found) == set(expected)
    assert {q: o for q, o in found.items() if q not in stored_llm_rejects} == {
        q: o for q, o in expected.items() if q not in stored_llm_rejects
    }
    if not final:
        assert tables(ctx) == reference["tables"]


def clear_after_first_request(srv: FaultServer, seconds: float) -> None:
    while not srv.snapshot()["requests"]:
        time.sleep(0.01)
    time.sleep(seconds)
    srv.settings = ServerSettings()


@pytest.mark.parametrize("breaker", [2, 1000], ids=["breaker", "no_breaker"])
def test_endpoint_dies_and_comes_back(
    breaker: int, engine: Engine, prepared: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """The server is stopped mid-run (open connections cut) and a new one listens on the same port 1 s later: the
    run ends with every row accounted, only answers on the wire at the stop are answered twice, and the re-run
    sends exactly the rows that failed. With the breaker most requests wait the outage out; without one they
    spend their attempts at once and wait for the next run."""
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    settings = ServerSettings(latency_ms=(40, 80), capacity=2)  # ~1.5 s of requests: the stop lands mid-run
    servers = [TemplateServer(settings).start()]
    port = servers[0].port
    on_the_wire: list[str] = []

    def outage() -> None:
        while servers[0].snapshot()["ok"] < 6:
            time.sleep(0.005)
        servers[0].stop()
        on_the_wire.extend(servers[0].snapshot()["unacked"])
        time.sleep(1.0)
        servers.append(TemplateServer(settings, port=port).start())

    watcher = threading.Thread(target=outage, daemon=True)
    watcher.start()
    try:
        ctx = make_ctx(engine, out, servers[0].url, (f"llm.breaker_failures={breaker}",))
        first = genericize(ctx)
        watcher.join(30)
        assert len(servers) == 2
        down, back = (srv.snapshot() for srv in servers)
        both = {key: dict(Counter(down[key]) + Counter(back[key])) for key in ("per_request", "answered")}
        answered = check_first_run(first, ctx, both)
        assert {rid for rid, n in both["answered"].items() if n > 1} <= set(on_the_wire)
        assert down["ok"] >= 6  # the stop happened mid-run
        transient, _ = split(first)
        if breaker > N_QUERIES:
            assert transient > 0  # the requests in flight at the stop burnt their 3 attempts within ~0.3 s
        else:
            assert back["requests"] > 0  # held back by the open breaker, requests reached the new server

        second = genericize(ctx)
        assert not check_rerun(second, back, servers[1].snapshot(), transient) & answered
    finally:
        for srv in servers:
            srv.stop()
    assert tables(ctx) == reference["tables"]


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 4 MB tmpfs: a real device that fills up (mounting needs root; skipped where that is refused)."""
    folder = tmp_path_factory.mktemp("disk")
    if not shutil.which("mount"):
        pytest.skip("no mount command: a full disk needs a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:120]})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write zeros into `folder`/filler until the device refuses."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def wait_quiet(srv: FaultServer, quiet_s: float = 1.0) -> None:
    """Until the server saw no request for `quiet_s` (a task of the failed job may still be finishing)."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        now = srv.snapshot()["requests"]
        if now != seen:
            seen, since = now, time.monotonic()
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["before_answers", "after_answers", "before_tables"])
def test_full_disk_stops_with_one_line_and_resumes(
    when: str, engine: Engine, prepared: Path, reference: dict[str, Any], small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The output device fills up before the answers arrive (the journal cannot be written), after they were all
    journaled (the ledger write fails) or before the stage's own tables are written: the stage stops with one line
    naming the folder; with space back, the same run resumes, sending no request whose answer was kept."""
    import fi_spark.llm.spark as llm_spark
    from fi_spark.tables import TableStore

    (small_disk / "filler").unlink(missing_ok=True)  # a failed case must not leave the next one a full disk
    out = small_disk / when
    shutil.copytree(prepared, out)
    if when == "after_answers":  # the second fold of the call is the one after the send step
        fold, folds = llm_spark.fold_journal, []

        def fill_then_fold(env: Any, root: str) -> int:
            folds.append(root)
            if len(folds) == 2:
                fill(small_disk)
            return fold(env, root)

        monkeypatch.setattr(llm_spark, "fold_journal", fill_then_fold)
    elif when == "before_tables":
        write = TableStore.write

        def fill_then_write(self: TableStore, df: Any, spec: Any) -> int:
            if spec.name == TEMPLATES.name:
                fill(small_disk)
            return write(self, df, spec)

        monkeypatch.setattr(TableStore, "write", fill_then_write)
    else:
        fill(small_disk)

    with TemplateServer() as srv:
        ctx = make_ctx(engine, out, srv.url)
        with pytest.raises(OutputFullError) as stopped:
            genericize(ctx)
        wait_quiet(srv)
        before = srv.snapshot()
        monkeypatch.undo()
        journaled = {row["request_id"] for files in list_files(str(out / "llm_journal")).values()
                     for path in files for row in read_rows(path)}  # fmt: skip
        kept = journaled | {r.request_id for r in ctx.store.read(LLM_RESPONSES).select("request_id").collect()}
        (small_disk / "filler").unlink()
        resumed = genericize(ctx)
        after = srv.snapshot()

    message = str(stopped.value)
    assert message.startswith(f"genericize: no space left on the device of the output folder {out};"), message
    assert "\n" not in message and "run the same command again" in message
    assert (resumed.rows_in, resumed.rows_out, resumed.rejected) == (N_QUERIES, 20, {"repeated_slot": 4})
    sent_again = Counter(after["per_request"]) - Counter(before["per_request"])
    assert not set(sent_again) & kept and sum(sent_again.values()) == len(sent_again) == N_QUERIES - len(kept)
    if when != "before_answers":
        assert len(kept) == N_QUERIES  # every answer survived the full disk: the resumed run sent nothing
    assert tables(ctx) == reference["tables"]
