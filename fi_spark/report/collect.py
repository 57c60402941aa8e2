"""Small Spark aggregations over the run's tables -> `ReportData`.

Every query returns a bounded number of rows (histogram bins, top-K templates, one row per reason,
stage or run), so the driver never holds data-sized results. Tables that do not exist yet are listed
as missing and their sections stay empty; columns are looked up by name so the report also reads
tables written by an older version of a stage.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.cost import CostRow, StageCost, cost_rows
from fi_spark.report.data import FunnelRow, Histogram, LLMStageStats, ReportData, TemplateUsage, gini

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fi_spark.config import Config
    from fi_spark.stages.base import FunnelStep, PipelineLayout
    from fi_spark.tables import TableStore

log = logging.getLogger(__name__)

UNITS = ("queries", "documents", "pairs")  # the funnel's order of units
QUANTILES = (0.5, 0.9, 0.99)
LATENCY_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


class Tables:
    """The run's tables by name; `get` is None for a table not written yet."""

    def __init__(self, store: TableStore, names: Sequence[str]) -> None:
        self.store = store
        self.frames: dict[str, DataFrame] = {}
        self.counts: dict[str, int] = {}
        self.missing: list[str] = []
        for name in names:  # every table a stage declares it writes (PipelineLayout.tables)
            df = store.by_name(name)
            if df is not None:
                self.frames[name] = df
                self.counts[name] = df.count()
            else:
                self.missing.append(name)

    def get(self, name: str, *columns: str) -> DataFrame | None:
        df = self.frames.get(name)
        if df is None or any(c not in df.columns for c in columns):
            return None
        return df

    def count(self, name: str) -> int | None:
        return self.counts.get(name)


def histogram(
    df: DataFrame, column: str, bins: int, lo: float | None = None, hi: float | None = None
) -> Histogram | None:
    """Equal-width histogram of a numeric column in one aggregation + one group-by of at most `bins` rows."""
    values = df.where(F.col(column).isNotNull()).select(F.col(column).cast("double").alias("v"))
    row = values.agg(
        F.count("v").alias("n"),
        F.min("v").alias("lo"),
        F.max("v").alias("hi"),
        F.avg("v").alias("mean"),
        *[F.percentile_approx("v", q, 1000).alias(f"q{i}") for i, q in enumerate(QUANTILES)],  # Sail: scalar only
    ).first()
    if row is None or not row["n"]:
        return None
    low = float(row["lo"] if lo is None else lo)
    high = float(row["hi"] if hi is None else hi)
    if high <= low:
        high = low + 1.0
    width = (high - low) / bins
    index = F.least(F.greatest(F.floor((F.col("v") - low) / width), F.lit(0)), F.lit(bins - 1)).cast("int")
    counts = [0] * bins
    for r in values.groupBy(index.alias("b")).count().collect():
        counts[r["b"]] = int(r["count"])
    quantiles = {f"p{round(q * 100)}": float(row[f"q{i}"]) for i, q in enumerate(QUANTILES) if row[f"q{i}"] is not None}
    return Histogram(
        edges=[low + i * width for i in range(bins + 1)],
        counts=counts,
        total=int(row["n"]),
        mean=float(row["mean"]),
        quantiles=quantiles,
    )


def _reasons(df: DataFrame, column: str = "reason") -> dict[str, int]:
    return {str(r[column]): int(r["count"]) for r in df.groupBy(column).count().collect()}


def funnel(t: Tables, config: Config, exported: int | None, declared: Sequence[FunnelStep]) -> list[FunnelRow]:
    """The funnel steps every stage declares (StageTables.funnel, handed in as PipelineLayout.funnel), queries
    first, then documents, then pairs."""
    steps = sorted(declared, key=lambda step: UNITS.index(step.unit))
    rows: list[FunnelRow] = []
    for step in steps:
        label = step.label.format(cfg=config)
        if not step.tables:  # the export's step: the rows it wrote
            if exported is not None:
                rows.append(FunnelRow(step.unit, label, exported))
            continue
        first = t.get(step.tables[0], *([step.distinct] if step.distinct else []))
        if first is None:
            continue
        if step.where:
            first = first.where(step.where.format(cfg=config))
        if step.distinct:
            n = first.select(step.distinct).distinct().count()
        elif step.where:
            n = first.count()
        else:
            n = t.count(step.tables[0]) or 0
        rows.append(FunnelRow(step.unit, label, n + sum(t.count(name) or 0 for name in step.tables[1:])))
    return rows


def rejects(t: Tables, config: Config) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name in ("query_rejects", "template_rejects", "doc_rejects", "match_rejects", "pair_rejects"):
        df = t.get(name, "reason")
        if df is not None:
            out[name] = _reasons(df)
    if t.get("duplicates", "method") is not None:
        out["duplicates"] = {f"duplicate_{k}": v for k, v in _reasons(t.frames["duplicates"], "method").items()}
    judged = t.get("judged", "score", "error_reason")
    if judged is not None:
        failed = _reasons(judged.where(F.col("error_reason").isNotNull()), "error_reason")
        below = judged.where(F.col("score") < config.judge.threshold).count()
        out["judged"] = {**failed, **({"below_threshold": below} if below else {})}
    return {k: v for k, v in out.items() if v}


def template_usage(t: Tables, top_k: int) -> TemplateUsage | None:
    matches = t.get("matches", "template_id")
    if matches is None or not t.count("matches"):
        return None
    # sum(1) rather than .count(): with Sail 0.7, grouping again by a .count() column of a Delta table fails
    # ("Physical input schema should be the same as the one converted from logical input schema").
    per_template = matches.groupBy("template_id").agg(F.sum(F.lit(1)).alias("count"))
    top_rows = per_template.orderBy(F.desc("count"), "template_id").limit(top_k)
    templates = t.get("templates", "template_id", "template")
    if templates is not None:
        top_rows = top_rows.join(templates.select("template_id", "template"), "template_id", "left")
    top_rows_list = [r.asDict() for r in top_rows.collect()]
    top = sorted(
        ((r.get("template") or r["template_id"], int(r["count"])) for r in top_rows_list), key=lambda kv: -kv[1]
    )
    hist = sorted(
        (int(r["count"]), int(r["n"])) for r in per_template.groupBy("count").agg(F.count("*").alias("n")).collect()
    )
    used = sum(n for _, n in hist)
    total = sum(u * n for u, n in hist)
    return TemplateUsage(
        bank_size=t.count("templates"),
        used=used,
        matches=total,
        top=top,
        uses_histogram=hist,
        gini=gini(hist),
        top_share=top[0][1] / total if top and total else 0.0,
    )


def grounding(t: Tables, bins: int) -> Histogram | None:
    frames = [t.get(n, "grounding") for n in ("pairs", "pair_rejects")]
    present = [df.select("grounding") for df in frames if df is not None]
    if not present:
        return None
    union = present[0]
    for df in present[1:]:
        union = union.unionByName(df)
    return histogram(union, "grounding", bins, 0.0, 1.0)


def llm_stats(t: Tables) -> list[LLMStageStats]:
    ledger = t.get("llm_responses", "stage", "run_id", "latency_ms", "finished_at_ms")
    if ledger is None or not t.count("llm_responses"):
        return []
    failures = t.get("llm_failures", "stage")
    transient = {} if failures is None else _reasons(failures, "stage")
    per_run = ledger.groupBy("stage", "run_id").agg(
        ((F.max("finished_at_ms") - F.min("finished_at_ms")) / 1000.0).alias("span_s"),
        (F.percentile_approx("latency_ms", 0.5, 1000) / 1000.0).alias("p50_s"),
    )
    busy = {r["stage"]: (float(r["busy"] or 0), int(r["runs"])) for r in per_run.groupBy("stage").agg(
        F.sum(F.col("span_s") + F.coalesce(F.col("p50_s"), F.lit(0.0))).alias("busy"), F.count("*").alias("runs")
    ).collect()}  # fmt: skip
    optional = [F.sum(c if c in ledger.columns else F.lit(0)).alias(c) for c in ("cached_tokens", "server_ms")]
    rows = ledger.groupBy("stage").agg(
        F.count("*").alias("requests"),
        F.sum(F.when(F.col("error_reason").isNotNull(), 1).otherwise(0)).alias("failed"),
        F.sum("prompt_tokens").alias("prompt_tokens"),
        F.sum("completion_tokens").alias("completion_tokens"),
        *optional,
        *[F.percentile_approx("latency_ms", q, 1000).alias(k) for k, q in LATENCY_QUANTILES.items()],
    )
    out = []
    for r in rows.orderBy("stage").collect():
        out.append(
            LLMStageStats(
                stage=r["stage"],
                requests=int(r["requests"]) + transient.get(r["stage"], 0),
                failed=int(r["failed"]) + transient.get(r["stage"], 0),
                prompt_tokens=int(r["prompt_tokens"] or 0),
                completion_tokens=int(r["completion_tokens"] or 0),
                latency_ms={k: float(r[k] or 0.0) for k in LATENCY_QUANTILES},
                busy_s=busy.get(r["stage"], (0.0, 0))[0],
                runs=busy.get(r["stage"], (0.0, 0))[1],
                cached_tokens=int(r["cached_tokens"] or 0),
                server_s=float(r["server_ms"] or 0.0) / 1000.0,
            )
        )
    return out


def kept_pairs(data: ReportData) -> int:
    """Judged pairs at or above the threshold (the pairs the final view keeps); 0 before the judge has run."""
    threshold = data.judge_threshold
    return sum(n for score, n in (data.judge_scores or {}).items() if threshold is not None and score >= threshold)


def stage_costs(llm: list[LLMStageStats], kept: int, config: Config) -> list[CostRow]:
    """The cost rows (fi_spark.cost) of the LLM stages' ledger sums, at the configured GPU price and rates."""
    spend = [StageCost(s.stage, s.requests, s.prompt_tokens, s.cached_tokens, s.completion_tokens, s.server_s)
             for s in llm]  # fmt: skip
    return cost_rows(spend, kept, config.report.rates())


def samples(t: Tables, config: Config, n: int) -> list[dict[str, str]]:
    pairs = t.get("pairs", "pair_id", "instruction", "answer")
    if pairs is None or n == 0:
        return []
    judged = t.get("judged", "pair_id", "score")
    cols = ["instruction", "answer", "grounding", "template_id"]
    if judged is not None:
        pairs = pairs.join(judged.where(F.col("score") >= config.judge.threshold).select("pair_id", "score"), "pair_id")
        cols.append("score")
    picked = pairs.orderBy(*(["score"] if judged is not None else []), "pair_id", ascending=False).limit(n)
    return [{c: (f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])) for c in cols} for r in picked.collect()]


def read_export_stats(location: str) -> dict[str, Any] | None:
    """The export's stats.json (local or s3://), or None when the export has not run."""
    path = storage.join(location, "stats.json")
    if not storage.exists(path):
        return None
    data: dict[str, Any] = json.loads(storage.read_bytes(path).decode("utf-8"))
    return data


def collect_report_data(store: TableStore, config: Config, export_location: str, layout: PipelineLayout) -> ReportData:
    """Everything the report shows, from the tables under `store.root`."""
    t = Tables(store, layout.tables)
    data = ReportData(output=store.root, tables=dict(t.counts), missing=list(t.missing))
    data.export = read_export_stats(export_location)
    exported = int(data.export["rows"]) if data.export and "rows" in data.export else None
    data.funnel = funnel(t, config, exported, layout.funnel)
    data.rejects = rejects(t, config)
    if t.count("documents") is not None:
        data.dedup = {"kept": t.count("documents") or 0}
        data.dedup.update(data.rejects.get("duplicates", {}))
        data.dedup["rejected (quality)"] = t.count("doc_rejects") or 0
    chunks = t.get("chunks", "n_tokens")
    data.chunk_tokens = histogram(chunks, "n_tokens", config.report.bins) if chunks is not None else None
    matches = t.get("matches")
    score_col = next((c for c in ("score", "match_score") if matches is not None and c in matches.columns), None)
    if matches is not None and score_col:
        data.match_scores = histogram(matches, score_col, config.report.bins)
    data.template_usage = template_usage(t, config.report.top_templates)
    data.grounding = grounding(t, config.report.bins)
    data.grounding_threshold = config.instantiate.min_grounding
    judged = t.get("judged", "score")
    if judged is not None:
        counts = judged.groupBy("score").count().collect()
        data.judge_scores = {int(r["score"]): int(r["count"]) for r in counts if r["score"] is not None}
        data.judge_failed = sum(int(r["count"]) for r in counts if r["score"] is None)
        data.judge_threshold = config.judge.threshold
    data.llm = llm_stats(t)
    data.gpu_rates = config.report.rates()
    data.cost = stage_costs(data.llm, kept_pairs(data), config)
    data.samples = samples(t, config, config.report.sample_pairs)
    return data
