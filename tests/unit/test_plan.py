"""`fi-spark plan` arithmetic (fi_spark.forecast) on literal numbers, and reading a run's tables into its inputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fi_spark.forecast import Cluster, SampleRun, StageSample, Target, estimate, fit_throughput, measure_run

SAMPLE = SampleRun(
    documents=100,
    doc_tokens=200.0,
    queries=50,
    matches=300,
    max_source_tokens=750.0,
    stages={
        "genericize": StageSample(requests=40, prompt_tokens=8000, completion_tokens=2000, passed=20, seconds=28.0),
        "instantiate": StageSample(
            requests=30, prompt_tokens=15000, completion_tokens=3000, cached_tokens=6000, passed=12, seconds=39.0
        ),
        "judge": StageSample(requests=12, prompt_tokens=7200, completion_tokens=600, passed=6, seconds=13.2),
    },
)
CLUSTER = Cluster(gpus=2, gen_tokens_per_s=100.0, prefill_tokens_per_s=1000.0, usd_per_gpu_hour=3.6)


def test_estimate_per_stage_on_literal_numbers() -> None:
    """10x the documents at 2x the tokens: requests, tokens, GPU seconds and $ per stage, worked by hand."""
    rows = {r.stage: r for r in estimate(SAMPLE, Target(documents=1000, doc_tokens=400.0, queries=500), CLUSTER)}
    got = {
        k: (r.requests, r.passed, r.prompt_tokens, r.cached_tokens, r.completion_tokens, round(r.usd, 6))
        for k, r in rows.items()
    }
    assert got == {
        # 500 queries x 200 prompt / 50 generated; 100 + 250 GPU-s = $0.35
        "genericize": (500.0, 250.0, 100_000.0, 0.0, 25_000.0, 0.35),
        # 1000 docs x 3 matches; (500 + 200 more shown document tokens) x 3000, 40% cached; 1260 + 3000 GPU-s
        "instantiate": (3000.0, 1200.0, 2_100_000.0, 840_000.0, 300_000.0, 4.26),
        # one request per passing pair (the sample's 12 requests for 12 pairs); (600 + 200) x 1200 prompt
        "judge": (1200.0, 600.0, 960_000.0, 0.0, 60_000.0, 1.56),
        "total": (4700.0, 600.0, 3_160_000.0, 840_000.0, 385_000.0, 6.17),
    }
    assert rows["total"].gpu_hours == pytest.approx(6170 / 3600)
    assert rows["total"].wall_hours == pytest.approx(6170 / 3600 / 2)
    assert rows["total"].extra["usd_per_kept_pair"] == pytest.approx(6.17 / 600)


def test_sample_caps_and_long_documents() -> None:
    """Caps bound genericize and instantiate requests; shown document tokens stop growing at the cut."""
    target = Target(documents=1000, doc_tokens=5000.0, queries=500, sample_queries=100, sample_pairs=50)
    rows = {r.stage: r for r in estimate(SAMPLE, target, CLUSTER)}
    assert (rows["genericize"].requests, rows["instantiate"].requests, rows["judge"].requests) == (100, 50, 20)
    assert rows["instantiate"].prompt_tokens == 50 * (500 + 750 - 200)


def test_a_judge_with_two_requests_per_pair_is_planned_per_judged_pair() -> None:
    """judge.v4 sends two scoring requests per pair (less shared neutral ones): the sample's 24 requests for
    its 12 judged pairs plan 2 requests per passing pair, and kept pairs stay 6 of 12 judged (not 6 of 24
    requests, which halved them: the fresh sample run planned 4 kept pairs where it had kept 7 of 23)."""
    stages = {**SAMPLE.stages, "judge": StageSample(requests=24, prompt_tokens=1200, completion_tokens=24, passed=6)}
    two = SampleRun(documents=100, doc_tokens=200.0, queries=50, matches=300, max_source_tokens=750.0, stages=stages)
    rows = {r.stage: r for r in estimate(two, Target(documents=1000, doc_tokens=200.0, queries=500), CLUSTER)}
    assert (rows["instantiate"].passed, rows["judge"].requests, rows["judge"].passed) == (1200.0, 2400.0, 600.0)
    assert rows["judge"].prompt_tokens == 2400 * 50 and rows["judge"].completion_tokens == 2400


def test_fit_throughput_recovers_the_rates_that_made_the_seconds() -> None:
    """Seconds made as uncached prompt / 1000 + generated / 100 give back exactly (1000, 100)."""
    prefill, gen = fit_throughput(SAMPLE)
    assert (prefill, gen) == (pytest.approx(1000.0), pytest.approx(100.0))
    rows = estimate(SAMPLE, Target(100, 200.0, 50, 40, 30), Cluster(1, gen, prefill, 0.0))
    assert [round(r.wall_hours * 3600, 6) for r in rows[:-1]] == [28.0, 39.0, 13.2]


def _write(root: Path, name: str, rows: list[dict[str, object]]) -> None:
    (root / "tables" / name).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "tables" / name / "part-0.parquet")


def test_measure_run_reads_counts_and_ledger_tokens(tmp_path: Path) -> None:
    """A run folder's tables become the plan's inputs: answers win over failures of the same request."""
    _write(tmp_path, "documents", [{"doc_id": "d1"}, {"doc_id": "d2"}])
    _write(tmp_path, "chunks", [{"n_tokens": 100}, {"n_tokens": 150}, {"n_tokens": 50}])
    _write(tmp_path, "queries", [{"query_id": f"q{i}"} for i in range(3)])
    _write(tmp_path, "templates", [{"origin": "genericize:v1"}, {"origin": "bank:x.jsonl"}])
    _write(tmp_path, "matches", [{"doc_id": "d1"}] * 4)
    _write(tmp_path, "pairs", [{"pair_id": "p1"}])
    _write(tmp_path, "judged", [{"score": 4}, {"score": 2}, {"score": None}])

    def req(rid: str, stage: str, p: int, c: int, end: int, ms: float, err: str | None = None) -> dict[str, object]:
        return {"request_id": rid, "stage": stage, "prompt_tokens": p, "completion_tokens": c, "error_reason": err,
                "finished_at_ms": end, "total_ms": ms, "latency_ms": ms}  # fmt: skip

    _write(
        tmp_path, "llm_responses", [req("a", "genericize", 10, 5, 3000, 1000.0), req("b", "judge", 30, 2, 9000, 500.0)]
    )
    _write(tmp_path, "llm_failures", [req("a", "genericize", 0, 0, 1500, 100.0, "retries_exhausted"),
                                      req("c", "genericize", 0, 0, 5000, 100.0, "retries_exhausted")])  # fmt: skip
    run = measure_run(str(tmp_path), keep_threshold=3.0, max_source_chars=2000)
    assert (run.documents, run.doc_tokens, run.queries, run.matches, run.max_source_tokens) == (2, 150.0, 3, 4, 500.0)
    assert run.stages == {
        "genericize": StageSample(requests=2, prompt_tokens=10, completion_tokens=5, passed=1, seconds=3.0),
        "judge": StageSample(requests=1, prompt_tokens=30, completion_tokens=2, passed=1, seconds=0.5),
    }
