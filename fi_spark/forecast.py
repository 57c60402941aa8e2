"""`fi-spark plan`: what a corpus will cost on a GPU cluster, from a sample run's measurements, before spending.

Pure arithmetic (`estimate`) over numbers a sample run measured (`SampleRun`, read from its tables by
`measure_run`). The model, per LLM stage, in the order the pipeline runs:

- genericize: one request per query sent (`min(queries, sample_queries)`); templates = requests x the
  sample's valid share;
- instantiate: one request per match; matches = documents x the sample's matches per document, capped by
  `sample_pairs` where given; pairs that pass the checks = requests x the sample's pass share;
- judge: the sample's requests per judged pair (1 for a one-token judge; about 2 for judge.v4, two scoring
  requests per pair less the neutral ones pairs share) x the passed pairs; kept pairs = passed pairs x the
  sample's kept share of the pairs it judged.
Tokens per request are the sample's averages per stage (the LLM ledger `llm_responses`). Instantiate and
judge prompts show the document cut to `max_source_tokens`: their prompt tokens move by the difference
between the target's and the sample's shown document tokens. Prompt tokens served from the prefix cache
(`cached_tokens`, where the ledger has them) keep the sample's share and cost no prefill.

GPU time of a stage = uncached prompt tokens / prefill tokens per s + generated tokens / generated tokens per s
(per GPU, with the server's batching at full load; fi_spark.cost.GpuRates, the report's rule too); wall time =
GPU time / GPUs (the stage's requests spread evenly, no start-up or tail); $ = GPU-hours x price. Non-LLM
stages (prepare, embed, match) run on CPUs and are not counted.

`fit_throughput` turns a run's own per-stage tokens and measured send seconds into the two throughputs
(least squares over its stages), so the plan can be re-applied to the sample's size and compared with
what it measured (`fi-spark plan --self-check`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fi_spark.cost import GpuRates
from fi_spark.storage import read_table_arrow

LLM_STAGES = ("genericize", "instantiate", "judge")


@dataclass(frozen=True)
class StageSample:
    """One LLM stage as a sample run measured it."""

    requests: int  # answered + failed requests in the ledger tables
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    passed: int = 0  # rows that went on: valid templates, passing pairs, kept pairs
    seconds: float = 0.0  # wall time of the stage's sending (first start to last finish)


@dataclass(frozen=True)
class SampleRun:
    documents: int
    doc_tokens: float  # average tokens per document
    queries: int
    matches: int  # document x template candidates the match stage produced
    stages: dict[str, StageSample]
    max_source_tokens: float = 750.0  # instantiate/judge show the document cut to this (3000 chars / 4)


@dataclass(frozen=True)
class Target:
    documents: int
    doc_tokens: float
    queries: int
    sample_queries: int | None = None  # genericize only this many (the local profile's caps), None = all
    sample_pairs: int | None = None


@dataclass(frozen=True)
class Cluster:
    gpus: int = 8
    gen_tokens_per_s: float = GpuRates.gen_tokens_per_s  # per GPU (the defaults and their sources: fi_spark.cost)
    prefill_tokens_per_s: float = GpuRates.prefill_tokens_per_s  # per GPU
    usd_per_gpu_hour: float = GpuRates.usd_per_gpu_hour

    @property
    def rates(self) -> GpuRates:
        return GpuRates(self.usd_per_gpu_hour, self.gen_tokens_per_s, self.prefill_tokens_per_s)


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    requests: float
    passed: float
    prompt_tokens: float
    cached_tokens: float
    completion_tokens: float
    gpu_hours: float
    wall_hours: float
    usd: float
    extra: dict[str, float] = field(default_factory=dict)


def estimate(sample: SampleRun, target: Target, cluster: Cluster) -> list[StageEstimate]:
    """Requests, tokens, GPU-hours, wall hours and $ per LLM stage for `target` on `cluster`, plus a total row."""
    out: list[StageEstimate] = []
    cap = sample.max_source_tokens
    doc_delta = min(target.doc_tokens, cap) - min(sample.doc_tokens, cap)  # shown document tokens
    templates_per_query = 0.0
    upstream = sample_upstream = 0.0
    for stage in LLM_STAGES:
        s = sample.stages.get(stage)
        if s is None or s.requests == 0:
            continue
        if stage == "genericize":
            requests = float(min(target.queries, target.sample_queries or target.queries))
        elif stage == "instantiate":
            matches = target.documents * sample.matches / max(sample.documents, 1)
            requests = min(matches, float(target.sample_pairs)) if target.sample_pairs else matches
        else:  # judge: the sample's requests per pair it judged (1; about 2 for judge.v4's scoring pairs)
            requests = upstream * s.requests / sample_upstream if sample_upstream else upstream
        prompt_per = s.prompt_tokens / s.requests + (doc_delta if stage != "genericize" else 0.0)
        cached_share = s.cached_tokens / s.prompt_tokens if s.prompt_tokens else 0.0
        prompt = requests * max(prompt_per, 0.0)
        cached = prompt * cached_share
        completion = requests * s.completion_tokens / s.requests
        gpu_s = cluster.rates.gpu_seconds(prompt, cached, completion)
        passed = requests * s.passed / s.requests
        if stage == "genericize":
            templates_per_query = passed / requests if requests else 0.0
        upstream, sample_upstream = passed, s.passed
        out.append(
            StageEstimate(
                stage=stage, requests=requests, passed=passed, prompt_tokens=prompt, cached_tokens=cached,
                completion_tokens=completion, gpu_hours=gpu_s / 3600, wall_hours=gpu_s / 3600 / cluster.gpus,
                usd=gpu_s / 3600 * cluster.usd_per_gpu_hour,
                extra={"templates_per_query": templates_per_query} if stage == "genericize" else {},
            )
        )  # fmt: skip
    total = StageEstimate(
        stage="total", requests=sum(e.requests for e in out), passed=out[-1].passed if out else 0.0,
        prompt_tokens=sum(e.prompt_tokens for e in out), cached_tokens=sum(e.cached_tokens for e in out),
        completion_tokens=sum(e.completion_tokens for e in out), gpu_hours=sum(e.gpu_hours for e in out),
        wall_hours=sum(e.wall_hours for e in out), usd=sum(e.usd for e in out),
    )  # fmt: skip
    kept = total.passed if out and out[-1].stage == "judge" else 0.0  # without a judge stage nothing is "kept"
    if kept:
        total.extra.update(usd_per_kept_pair=total.usd / kept)
    return [*out, total]


def fit_throughput(sample: SampleRun) -> tuple[float, float]:
    """(prefill, generated) tokens per s that best explain the sample's per-stage send seconds (least squares).

    seconds_i = uncached_prompt_i * a + completion_i * b, solved for a, b >= 0 by the 2x2 normal equations
    (one stage alone: its total tokens over its seconds, for both rates).
    """
    rows = [(s.prompt_tokens - s.cached_tokens, s.completion_tokens, s.seconds)
            for s in sample.stages.values() if s.seconds > 0 and s.requests]  # fmt: skip
    if not rows:
        raise ValueError("the sample run has no measured send seconds to fit")
    spp = sum(p * p for p, _, _ in rows)
    scc = sum(c * c for _, c, _ in rows)
    spc = sum(p * c for p, c, _ in rows)
    sps = sum(p * t for p, _, t in rows)
    scs = sum(c * t for _, c, t in rows)
    det = spp * scc - spc * spc
    a = (sps * scc - scs * spc) / det if det else 0.0
    b = (scs * spp - sps * spc) / det if det else 0.0
    if det == 0 or a <= 0 or b <= 0:  # degenerate: one rate for all tokens
        tokens = sum(p + c for p, c, _ in rows)
        rate = tokens / sum(t for _, _, t in rows)
        return rate, rate
    return 1 / a, 1 / b


# --------------------------------------------------------------------------- reading a run's tables
def measure_run(output: str, keep_threshold: float = 3.0, max_source_chars: int = 3000) -> SampleRun:
    """The plan's inputs from a finished run folder: counts, pass shares and tokens per request per stage."""
    import pyarrow.compute as pc

    docs = read_table_arrow(output, "documents")
    if docs is None:
        raise ValueError(f"{output}: no tables/documents; give the output folder of a finished pipeline run")
    chunks = read_table_arrow(output, "chunks")
    doc_tokens = (pc.sum(chunks["n_tokens"]).as_py() or 0) / max(docs.num_rows, 1) if chunks is not None else 0.0
    count = {
        n: (t.num_rows if (t := read_table_arrow(output, n)) is not None else 0)
        for n in ("queries", "matches", "pairs")
    }
    judged = read_table_arrow(output, "judged")
    kept = 0
    if judged is not None:
        kept = int(pc.sum(pc.greater_equal(judged["score"], keep_threshold)).as_py() or 0)
    templates = read_table_arrow(output, "templates")
    valid = 0
    if templates is not None:
        valid = int(pc.sum(pc.starts_with(templates["origin"], "genericize")).as_py() or 0)
    passed = {"genericize": valid, "instantiate": count["pairs"], "judge": kept}
    stages: dict[str, list[dict[str, Any]]] = {}
    for name in ("llm_responses", "llm_failures"):
        table = read_table_arrow(output, name)
        if table is None:
            continue
        for row in table.to_pylist():
            stages.setdefault(row["stage"], []).append(row)
    sampled = {}
    for stage, rows in stages.items():
        by_id = {r["request_id"]: r for r in sorted(rows, key=lambda r: r["error_reason"] is None)}  # answers win
        reqs = list(by_id.values())
        starts = [r["finished_at_ms"] - (r["total_ms"] or r["latency_ms"] or 0) for r in reqs]
        sampled[stage] = StageSample(
            requests=len(reqs), prompt_tokens=sum(r["prompt_tokens"] or 0 for r in reqs),
            completion_tokens=sum(r["completion_tokens"] or 0 for r in reqs),
            cached_tokens=sum(r.get("cached_tokens") or 0 for r in reqs), passed=passed.get(stage, 0),
            seconds=(max(r["finished_at_ms"] for r in reqs) - min(starts)) / 1000 if reqs else 0.0,
        )  # fmt: skip
    return SampleRun(
        documents=docs.num_rows, doc_tokens=doc_tokens, queries=count["queries"], matches=count["matches"],
        stages=sampled, max_source_tokens=max_source_chars / 4,
    )  # fmt: skip


def render(rows: list[StageEstimate]) -> str:
    """The plan as a fixed-width table."""
    head = f"{'stage':<12}{'requests':>12}{'passed':>12}{'prompt tok':>14}{'cached tok':>14}{'gen tok':>14}"
    head += f"{'GPU-h':>10}{'wall h':>9}{'$':>11}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.stage:<12}{r.requests:>12,.0f}{r.passed:>12,.0f}{r.prompt_tokens:>14,.0f}{r.cached_tokens:>14,.0f}"
            f"{r.completion_tokens:>14,.0f}{r.gpu_hours:>10,.2f}{r.wall_hours:>9,.2f}{r.usd:>11,.2f}"
        )
    per_pair = rows[-1].extra.get("usd_per_kept_pair") if rows else None
    if per_pair is not None and math.isfinite(per_pair):
        lines.append(f"$ per kept pair: {per_pair:.6f}")
    return "\n".join(lines)
