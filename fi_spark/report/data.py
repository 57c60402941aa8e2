"""What the run report shows, as small plain values: the output of the Spark aggregations, the input of plots/HTML.

Every field is bounded in size by configuration (histogram bins, top-K) and never by data volume, so
the driver can hold it for any corpus. A field is None when its table does not exist yet (a stage that
has not run): the report says so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fi_spark.cost import CostRow, GpuRates


@dataclass(frozen=True)
class Histogram:
    """Counts in equal-width bins between edges[0] and edges[-1] (len(edges) == len(counts) + 1)."""

    edges: list[float]
    counts: list[int]
    total: int
    mean: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)  # "p50" -> value


@dataclass(frozen=True)
class FunnelRow:
    unit: str  # what is counted: "documents", "queries", "pairs"
    step: str
    rows: int


@dataclass(frozen=True)
class TemplateUsage:
    """How matches spread over templates (the recipe wants no single template to dominate)."""

    bank_size: int | None  # templates in the `templates` table, when it exists
    used: int  # templates with at least one match
    matches: int
    top: list[tuple[str, int]]  # (template text or id, matches), most used first
    uses_histogram: list[tuple[int, int]]  # (matches per template, number of templates), ascending by matches
    gini: float  # over used templates: 0 = perfectly even, -> 1 = one template takes all
    top_share: float  # share of all matches taken by the single most used template


@dataclass(frozen=True)
class LLMStageStats:
    stage: str
    requests: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: dict[str, float]  # "p50" / "p95" / "p99"
    busy_s: float  # summed per run: last finish - first finish (+ one median latency)
    runs: int
    cached_tokens: int = 0  # prompt tokens served from the prefix cache (ledgers written before: 0)
    server_s: float = 0.0  # the ledger's server_ms summed, in seconds

    @property
    def completion_tokens_per_s(self) -> float:
        return self.completion_tokens / self.busy_s if self.busy_s else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.busy_s if self.busy_s else 0.0


@dataclass
class ReportData:
    output: str
    tables: dict[str, int]  # table -> rows, for every table that exists
    missing: list[str]  # tables the report would use that do not exist yet
    funnel: list[FunnelRow] = field(default_factory=list)
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> reason -> rows
    dedup: dict[str, int] = field(default_factory=dict)  # "kept", "duplicate:<method>", "rejected"
    chunk_tokens: Histogram | None = None
    match_scores: Histogram | None = None
    template_usage: TemplateUsage | None = None
    grounding: Histogram | None = None
    grounding_threshold: float | None = None
    judge_scores: dict[int, int] | None = None
    judge_threshold: float | None = None
    judge_failed: int = 0
    llm: list[LLMStageStats] = field(default_factory=list)
    cost: list[CostRow] = field(default_factory=list)  # per LLM stage + total (fi_spark.cost); [] without a ledger
    gpu_rates: GpuRates = field(default_factory=GpuRates)  # what the cost estimate assumed (report.* settings)
    samples: list[dict[str, str]] = field(default_factory=list)
    export: dict[str, Any] | None = None  # the export's stats.json, when it exists
    notes: list[str] = field(default_factory=list)


def gini(values_with_counts: list[tuple[int, int]]) -> float:
    """Gini coefficient of a multiset given as (value, how many times) pairs; 0.0 for empty or all-zero."""
    items = sorted((v, c) for v, c in values_with_counts if c > 0)
    n = sum(c for _, c in items)
    total = sum(v * c for v, c in items)
    if n == 0 or total == 0:
        return 0.0
    # G = 1 - 2 * (area under the Lorenz curve), summed exactly over runs of equal values
    area = 0.0
    cum = 0.0
    for value, count in items:
        share = value * count / total
        area += count / n * (cum + share / 2)
        cum += share
    return max(0.0, 1.0 - 2.0 * area)
