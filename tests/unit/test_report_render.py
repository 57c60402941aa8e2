"""Report rendering from plain values: plots and HTML without Spark (fi_spark.report)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fi_spark.config import Config
from fi_spark.cost import GpuRates, StageCost, cost_rows
from fi_spark.report import render_report
from fi_spark.report.collect import kept_pairs, stage_costs
from fi_spark.report.data import FunnelRow, Histogram, LLMStageStats, ReportData, TemplateUsage, gini

RATES = GpuRates(3.6, 1_000.0, 10_000.0)


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
        cost=cost_rows(
            [
                StageCost("instantiate", 1400, 900_000, 600_000, 300_000, 1200.0),
                StageCost("judge", 210, 120_000, 0, 420, 60.0),
            ],
            kept=120,
            rates=RATES,
        ),
        gpu_rates=RATES,
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
    """With every table present, all ten plots are drawn and linked, and data text is escaped."""
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
        "cost",
    }
    for path in files.plots.values():
        assert os.path.getsize(path) > 5_000
    page = Path(files.html).read_text(encoding="utf-8")
    for name in files.plots:
        assert f'src="{name}.png"' in page
    assert "What &lt;b&gt;is&lt;/b&gt; X?" in page and "<b>is</b>" not in page
    assert "Dedup rate: <b>1.60%</b>" in page
    assert "Not available yet" not in page


def test_cost_section_lists_spend_per_kept_pair(tmp_path):
    """The cost table shows each stage's spend, its server-seconds / generated tokens per kept pair and the estimate."""
    page = Path(render_report(full_data(), Config(), str(tmp_path)).html).read_text(encoding="utf-8")
    section = page.split("<h2>Cost per kept pair</h2>")[1].split("<h2>")[0]
    # instantiate: 1200 s / 120 pairs = 10 s, 300,000 tokens / 120 = 2,500; 300,000 uncached prompt tokens at 10k/s +
    # 300,000 generated at 1k/s = 330 GPU-s = 0.0917 GPU-h = $0.33 at $3.6/GPU-h
    assert (
        '<tr><td>instantiate</td><td class="n">900,000</td><td class="n">600,000</td><td class="n">300,000</td>'
        '<td class="n">1,200</td><td class="n">10</td><td class="n">2,500</td><td class="n">0.0917</td>'
        '<td class="n">0.33</td></tr>'
    ) in section
    assert "<td>total</td>" in section and "120 kept pairs" in section and "$3.6 per GPU-hour" in section


def test_kept_pairs_and_stage_costs_from_report_data():
    """Kept pairs are the judged scores at or above the threshold; the LLM stats become cost rows at the settings."""
    data = full_data()
    assert kept_pairs(data) == 60 + 40 + 20  # threshold 3.0 of {1: 30, 2: 55, 3: 60, 4: 40, 5: 20}
    assert kept_pairs(ReportData(output="/tmp/run", tables={}, missing=[])) == 0
    cfg = Config().model_copy(update={"report": Config().report.model_copy(update={"usd_per_gpu_hour": 1.0})})
    rows = stage_costs(data.llm, 120, cfg)
    assert [r.spend.stage for r in rows] == ["genericize", "instantiate", "judge", "total"]
    assert rows[-1].spend.completion_tokens == 350_000 and rows[-1].kept == 120
    # 1,170,000 prompt tokens at 110k/s + 350,000 generated at 11k/s, $1 per GPU-hour
    assert rows[-1].usd == pytest.approx((1_170_000 / 110_000 + 350_000 / 11_000) / 3600)


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
