"""What the LLM stages cost: measured spend per stage and per kept pair, and its GPU-hour and $ estimate.

Consumes per-stage sums from the LLM ledger (`StageCost`: requests, prompt tokens, prompt tokens served
from the prefix cache, generated tokens, server-seconds) and the number of kept pairs (judge score at or
above the threshold); produces one `CostRow` per stage plus a total, with the per-kept-pair figures the
report plots and the dataset card lists, and the MLflow metrics (`cost_metrics`).

GPU time is estimated from tokens, not from the measured server-seconds (those are the servers this run
happened to use, e.g. a CPU laptop): uncached prompt tokens / prefill tokens per s + generated tokens /
generated tokens per s, per GPU at full batch (`GpuRates.gpu_seconds`, the same rule `fi-spark plan` uses).
Cached prompt tokens cost no prefill. The rates and the price are settings (`report.usd_per_gpu_hour`,
`report.gen_tokens_per_s`, `report.prefill_tokens_per_s`), whose defaults are `GpuRates`'s. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuRates:
    """Price and throughput of one GPU serving the models, at full batch."""

    usd_per_gpu_hour: float = 2.5
    gen_tokens_per_s: float = 11_000.0  # ~4e11 generated tokens in ~1e4 H100-hours (issue 12)
    prefill_tokens_per_s: float = 110_000.0  # uncached prompt tokens; assumed 10x the generation rate

    def gpu_seconds(self, prompt_tokens: float, cached_tokens: float, completion_tokens: float) -> float:
        """GPU-seconds of a batch of requests: uncached prefill plus generation."""
        return max(prompt_tokens - cached_tokens, 0.0) / self.prefill_tokens_per_s + (
            completion_tokens / self.gen_tokens_per_s
        )


@dataclass(frozen=True)
class StageCost:
    """One LLM stage's measured spend: sums over its ledger rows (answers and failures)."""

    stage: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    server_s: float


@dataclass(frozen=True)
class CostRow:
    """A stage (or `total`): its spend, the estimate, and both per kept pair (None when no pair was kept)."""

    spend: StageCost
    gpu_hours: float
    usd: float
    kept: int

    def per_pair(self, value: float) -> float | None:
        return value / self.kept if self.kept else None

    @property
    def server_s_per_pair(self) -> float | None:
        return self.per_pair(self.spend.server_s)

    @property
    def completion_tokens_per_pair(self) -> float | None:
        return self.per_pair(self.spend.completion_tokens)

    @property
    def prompt_tokens_per_pair(self) -> float | None:
        return self.per_pair(self.spend.prompt_tokens)

    @property
    def usd_per_pair(self) -> float | None:
        return self.per_pair(self.usd)


def cost_rows(stages: list[StageCost], kept: int, rates: GpuRates) -> list[CostRow]:
    """One row per stage, in the given order, then `total`; [] when no stage sent anything."""
    if not stages:
        return []
    rows = []
    for s in stages:
        gpu_h = rates.gpu_seconds(s.prompt_tokens, s.cached_tokens, s.completion_tokens) / 3600
        rows.append(CostRow(s, gpu_h, gpu_h * rates.usd_per_gpu_hour, kept))
    total = StageCost(
        "total", sum(s.requests for s in stages), sum(s.prompt_tokens for s in stages),
        sum(s.cached_tokens for s in stages), sum(s.completion_tokens for s in stages),
        sum(s.server_s for s in stages),
    )  # fmt: skip
    return [*rows, CostRow(total, sum(r.gpu_hours for r in rows), sum(r.usd for r in rows), kept)]


def cost_metrics(rows: list[CostRow]) -> dict[str, float]:
    """MLflow metrics `cost.<stage>.<what>` (stage `total` included); per-pair keys only when pairs were kept."""
    out: dict[str, float] = {}
    for r in rows:
        key = f"cost.{r.spend.stage}"
        out.update({f"{key}.prompt_tokens": float(r.spend.prompt_tokens),
                    f"{key}.cached_prompt_tokens": float(r.spend.cached_tokens),
                    f"{key}.completion_tokens": float(r.spend.completion_tokens),
                    f"{key}.server_seconds": r.spend.server_s, f"{key}.gpu_hours": r.gpu_hours,
                    f"{key}.usd": r.usd})  # fmt: skip
        if r.kept:
            out.update({f"{key}.server_seconds_per_kept_pair": r.spend.server_s / r.kept,
                        f"{key}.completion_tokens_per_kept_pair": r.spend.completion_tokens / r.kept,
                        f"{key}.usd_per_kept_pair": r.usd / r.kept})  # fmt: skip
    if rows:
        out["cost.kept_pairs"] = float(rows[-1].kept)
    return out
