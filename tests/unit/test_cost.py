"""Cost accounting on literal numbers (fi_spark.cost): GPU-seconds, per-kept-pair rows, MLflow metrics."""

from __future__ import annotations

import pytest

from fi_spark.config import Config
from fi_spark.cost import GpuRates, StageCost, cost_metrics, cost_rows
from fi_spark.forecast import Cluster

RATES = GpuRates(usd_per_gpu_hour=3.6, gen_tokens_per_s=1_000.0, prefill_tokens_per_s=10_000.0)
STAGES = [
    StageCost("instantiate", requests=10, prompt_tokens=50_000, cached_tokens=30_000, completion_tokens=4_000,
              server_s=120.0),
    StageCost("judge", requests=10, prompt_tokens=20_000, cached_tokens=0, completion_tokens=20, server_s=30.0),
]  # fmt: skip


def test_gpu_seconds_charge_uncached_prefill_and_generation() -> None:
    """20,000 uncached prompt tokens at 10k/s + 4,000 generated at 1k/s = 2 + 4 GPU-seconds; cached cost nothing."""
    assert RATES.gpu_seconds(50_000, 30_000, 4_000) == pytest.approx(6.0)
    assert RATES.gpu_seconds(50_000, 50_000, 0) == 0.0


def test_cost_rows_per_stage_total_and_per_kept_pair() -> None:
    """Two stages and 5 kept pairs: GPU-hours, $ and the per-pair figures of each stage and of the total."""
    inst, judge, total = cost_rows(STAGES, kept=5, rates=RATES)
    assert inst.gpu_hours == pytest.approx(6.0 / 3600) and inst.usd == pytest.approx(0.006)
    assert judge.gpu_hours == pytest.approx(2.02 / 3600) and judge.usd == pytest.approx(0.00202)
    assert total.spend == StageCost("total", 20, 70_000, 30_000, 4_020, 150.0)
    assert total.usd == pytest.approx(0.00802)
    assert (inst.server_s_per_pair, judge.server_s_per_pair, total.server_s_per_pair) == (24.0, 6.0, 30.0)
    assert (inst.completion_tokens_per_pair, judge.completion_tokens_per_pair) == (800.0, 4.0)
    assert total.prompt_tokens_per_pair == 14_000.0
    assert total.usd_per_pair == pytest.approx(0.001604)


def test_no_kept_pair_has_totals_but_no_per_pair_figures() -> None:
    """Before any pair is kept the spend and estimate are reported; per-pair values are None, not a division."""
    rows = cost_rows(STAGES, kept=0, rates=RATES)
    assert rows[-1].usd == pytest.approx(0.00802)
    assert [r.server_s_per_pair for r in rows] == [None, None, None]
    assert cost_rows([], kept=3, rates=RATES) == []


def test_cost_metrics_names_and_values() -> None:
    """MLflow keys are cost.<stage>.<what>; per-pair keys appear only when pairs were kept."""
    metrics = cost_metrics(cost_rows(STAGES, kept=5, rates=RATES))
    assert metrics["cost.total.server_seconds_per_kept_pair"] == 30.0
    assert metrics["cost.instantiate.completion_tokens_per_kept_pair"] == 800.0
    assert metrics["cost.judge.cached_prompt_tokens"] == 0.0
    assert metrics["cost.total.usd_per_kept_pair"] == pytest.approx(0.001604)
    assert metrics["cost.total.gpu_hours"] == pytest.approx(8.02 / 3600)
    assert metrics["cost.kept_pairs"] == 5.0
    assert len(metrics) == 3 * 9 + 1
    unkept = cost_metrics(cost_rows(STAGES, kept=0, rates=RATES))
    assert not [k for k in unkept if "per_kept_pair" in k] and len(unkept) == 3 * 6 + 1
    assert cost_metrics([]) == {}


def test_rate_defaults_are_defined_once() -> None:
    """The plan's cluster and the report settings take GpuRates' defaults, and hand overrides through."""
    assert Cluster().rates == GpuRates() == Config().report.rates()
    assert Cluster(gpus=2, gen_tokens_per_s=5.0, prefill_tokens_per_s=50.0, usd_per_gpu_hour=1.0).rates == GpuRates(
        1.0, 5.0, 50.0
    )
    custom = Config().report.model_copy(update={"usd_per_gpu_hour": 4.0})
    assert custom.rates() == GpuRates(4.0, GpuRates.gen_tokens_per_s, GpuRates.prefill_tokens_per_s)
