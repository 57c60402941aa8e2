"""Report rendering from plain values: plots and HTML without Spark (fi_spark.report)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fi_spark.config import Config
from fi_spark.report import render_report
from fi_spark.report.data import FunnelRow, Histogram, LLMStageStats, ReportData, TemplateUsage, gini


def hist(values: list[float], bins: int, lo: float, hi: float) -> Histogram:
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / width)))] += 1
    return Histogram([lo + i * width for i in range(bins + 1)], counts, len(values), sum(values) / len(values))


def full_data() -> ReportData:
    rng = random.Random(3)
    templates = [
        (f"How do I <fi>do a task</fi> with <fi>tool number {i}</fi> on a long template text?", 40 - i)
        for i in range(20)
    ]
    return ReportData(
        output="/tmp/run",
        tables={"documents": 480, "chunks": 900, "matches": 1400, "pairs": 210, "judged": 210},
        missing=["query_rejects"],
        funnel=[
            FunnelRow("queries", "ingested", 500),
            FunnelRow("queries", "templates kept", 310),
            FunnelRow("documents", "input", 500),
            FunnelRow("documents", "kept", 480),
            FunnelRow("documents", "matched a template", 470),
            FunnelRow("pairs", "candidates (matches)", 1400),
            FunnelRow("pairs", "instantiated", 1400),
            FunnelRow("pairs", "passed checks", 210),
            FunnelRow("pairs", "judged", 205),
            FunnelRow("pairs", "score >= 3", 120),
            FunnelRow("pairs", "exported", 120),
        ],
        rejects={
            "pair_rejects": {
                "ungrounded": 900,
                "unfilled_slots": 150,
                "llm_schema_invalid": 100,
                "answer_too_short": 40,
            },
            "doc_rejects": {"too_short": 12},
            "duplicates": {"duplicate_exact": 8},
            "judged": {"below_threshold": 85, "judge_unparseable": 5},
        },
        dedup={"kept": 480, "duplicate_exact": 8, "rejected (quality)": 12},
        chunk_tokens=hist([rng.gauss(150, 50) for _ in range(900)], 30, 0, 256),
        match_scores=hist([rng.uniform(0.2, 0.7) for _ in range(1400)], 30, 0.2, 0.7),
        template_usage=TemplateUsage(
            310, 200, 1400, templates, [(1, 80), (2, 50), (5, 40), (10, 20), (40, 10)], 0.5, 40 / 1400
        ),
        grounding=hist([rng.random() ** 0.5 for _ in range(1400)], 20, 0, 1),
        grounding_threshold=0.8,
        judge_scores={1: 30, 2: 55, 3: 60, 4: 40, 5: 20},
        judge_threshold=3.0,
        judge_failed=5,
        llm=[
            LLMStageStats(
                "genericize", 500, 12, 150_000, 40_000, {"p50": 900.0, "p95": 2500.0, "p99": 4000.0}, 300.0, 1
            ),
            LLMStageStats(
                "instantiate", 1400, 100, 900_000, 300_000, {"p50": 1500.0, "p95": 4000.0, "p99": 6000.0}, 900.0, 2
            ),
            LLMStageStats("judge", 210, 5, 120_000, 10_000, {"p50": 700.0, "p95": 1500.0, "p99": 2000.0}, 120.0, 1),
        ],
        samples=[{"instruction": "What <b>is</b> X?", "answer": "X is Y.", "grounding": "1.000", "score": "5"}],
        export={
            "rows": 120,
            "shards": [
                {
                    "file": "data/train-00000-of-00001.parquet",
                    "split": "train",
                    "rows": 120,
                    "tokens": 9000,
                    "bytes": 1234,
                }
            ],
        },
    )


def test_full_report_has_every_plot_and_section(tmp_path):
    """With every table present, all nine plots are drawn and linked, and data text is escaped."""
    files = render_report(full_data(), Config(), str(tmp_path))
    assert set(files.plots) == {
        "funnel",
        "rejects",
        "dedup",
        "chunk_tokens",
        "match_scores",
        "template_usage",
        "grounding",
        "judge",
        "llm",
    }
    for path in files.plots.values():
        assert os.path.getsize(path) > 5_000
    page = Path(files.html).read_text(encoding="utf-8")
    for name in files.plots:
        assert f'src="{name}.png"' in page
    assert "What &lt;b&gt;is&lt;/b&gt; X?" in page and "<b>is</b>" not in page
    assert "Dedup rate: <b>1.60%</b>" in page
    assert "Not available yet" not in page


def test_empty_report_degrades_and_removes_stale_plots(tmp_path):
    """A run with no tables renders a page naming what is missing, and old plots are deleted."""
    render_report(full_data(), Config(), str(tmp_path))
    files = render_report(
        ReportData(output="/tmp/run", tables={}, missing=["documents", "pairs"]), Config(), str(tmp_path)
    )
    assert files.plots == {}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    page = Path(files.html).read_text(encoding="utf-8")
    assert "Tables not written yet: documents, pairs." in page
    assert page.count("Not available yet") >= 6


@pytest.mark.parametrize(
    ("values", "expected"),
    [([(5, 10)], 0.0), ([], 0.0), ([(0, 9), (10, 1)], 0.9), ([(1, 1), (3, 1)], 0.25)],
)
def test_gini(values, expected):
    """Gini: even -> 0, one of ten takes all -> 0.9, (1, 3) -> 0.25."""
    assert gini(values) == pytest.approx(expected)
