"""bench/ stays runnable: every bench module imports, the cheapest bench runs end to end and prints its table, and
a peer that hangs or fails becomes a row of the table instead of a crash (bench.harness.peers.run_peer)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time

import pytest

from bench.harness.peers import run_peer
from tests.conftest import REPO

BENCHES = sorted(p.stem for p in (REPO / "bench").glob("*.py") if p.stem != "__init__")
HARNESS = sorted(f"harness.{p.stem}" for p in (REPO / "bench" / "harness").glob("*.py") if p.stem != "__init__")


def test_the_bench_list_is_the_folder():
    """The parametrized import test below sees the benches that exist (a glob that found nothing would pass)."""
    assert {"journal", "scale", "llm_client", "dedup", "run_all"} <= set(BENCHES)
    assert "harness.peers" in HARNESS and "harness.fault_server" in HARNESS


@pytest.mark.parametrize("name", BENCHES + HARNESS)
def test_bench_module_imports(name: str):
    """Each bench (and harness module) imports as bench.<name>: a broken import fails here, not in a long run."""
    module = importlib.import_module(f"bench.{name}")
    if name in BENCHES:
        assert callable(getattr(module, "main", None)), f"bench/{name}.py has no main()"
        assert module.__doc__, f"bench/{name}.py lost its docstring"


def test_journal_bench_prints_its_table_and_summary():
    """`python -m bench.journal`, small: the fault server from the harness, its four-row table, its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.journal", "--answers", "500", "--requests", "100"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "| measured | rate |" and lines[1] == "|---|---|"
    rows = [ln for ln in lines if ln.startswith("| ") and ln != lines[0]]
    assert len(rows) == 4 and all(ln.rstrip().endswith(("answers/s |", "req/s |")) for ln in rows)
    assert lines[-1].startswith("journal: per-answer ") and " req/s with, " in lines[-1]


def test_a_peer_that_hangs_is_a_row_not_an_exception():
    """A child that sleeps forever is ended at its deadline, with its whole session, and reported as hung."""
    started = time.monotonic()
    run = run_peer("sleeper", [sys.executable, "-c", "import time; time.sleep(3600)"], timeout_s=1.5)
    assert time.monotonic() - started < 20
    assert run.status == "hung" and run.returncode is None and run.result is None
    assert run.row() == "sleeper: hung > 1.5 s (no figure)"


def test_a_peer_that_fails_is_a_row_with_its_last_error_line():
    """A child that exits non-zero is `failed`, its row names the exit code and its last stderr line."""
    code = "import sys; print('working', file=sys.stderr); sys.exit('boom: no server')"
    run = run_peer("broken", [sys.executable, "-c", code], timeout_s=30)
    assert run.status == "failed" and run.returncode == 1
    assert run.row() == "broken: failed (rc 1: boom: no server) (no figure)"


def test_a_peer_that_answers_gives_its_last_json_line():
    """A child that exits 0 is `ok`, its result is the last line of stdout that is a JSON object."""
    code = "print('log line'); print('{\"seconds\": 1.5}'); print('{\"seconds\": 2.5, \"ok\": 3}')"
    run = run_peer("fine", [sys.executable, "-c", code], timeout_s=30)
    assert run.ok and run.result == {"seconds": 2.5, "ok": 3}


def test_a_peer_that_exits_0_without_a_result_has_failed():
    """Exit 0 but no JSON line: no figure to print, so `failed (no result)`."""
    run = run_peer("silent", [sys.executable, "-c", "print('done')"], timeout_s=30)
    assert run.status == "failed" and run.row() == "silent: failed (no result) (no figure)"


def test_scale_table_joins_sizes_saved_by_separate_runs(tmp_path, capsys):
    """`python -m bench.scale --table a.json b.json`: a long size run on its own joins the earlier sizes in one
    table, and the growth per 10x is computed across the files (here match: 10x the time for 10x the documents)."""
    from dataclasses import asdict

    from bench import scale

    def size(docs: int, match_s: float) -> dict:
        stages = [scale.StageRun("prepare_corpus", 1.0 * docs / 1000, 500.0, 1.0, docs, docs, 0),
                  scale.StageRun("match", match_s, 900.0, match_s, docs, docs // 2, 0)]  # fmt: skip
        return asdict(scale.SizeRun(docs, 3.0, stages))

    (tmp_path / "small.json").write_text(json.dumps([size(1000, 10.0)]))
    (tmp_path / "large.json").write_text(json.dumps([size(10000, 150.0)]))
    scale.table_of_saved([tmp_path / "large.json", tmp_path / "small.json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split()[1:3] == ["s@1k", "cpu@1k"]
    assert out[-1] == "scale: 1k 14s, 10k 163s, peak 900 MB; worst growth 1.50 per 10x (stage match)"


def test_engine_memory_bench_prints_a_row_per_cell_and_the_batch_comparison():
    """`python -m bench.engine_memory`, tiny: each cell a process with its own Sail server, one row each, and the
    summary line comparing batch sizes at the largest size."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.engine_memory", "--rows", "200,400", "--batch-rows", "128,64",
         "--partitions", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 200") or line.startswith("| 400")]
    assert len(rows) == 4 and all("failed" not in r for r in rows), done.stdout
    assert "engine_memory: 400 rows, 2 partitions: batch 64 grows" in done.stdout


def test_encoder_memory_bench_prints_both_settings_side_by_side(tmp_path):
    """`python -m bench.encoder_memory`, tiny: each setting in a process of its own, a row per step with both."""
    pytest.importorskip("openvino")
    done = subprocess.run(
        [sys.executable, "-m", "bench.encoder_memory", "--chunks", "500", "--step", "250",
         "--cache-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 250 ") or line.startswith("| 500 ")]
    assert len(rows) == 2 and all(len(r.split("|")) == 6 for r in rows), done.stdout
    assert "growth after the first step: off (fi-spark)" in done.stdout
