"""Stage `match`: documents (chunks) + the template index -> `matches`, `match_rejects`.

Per partition (mapInPandas, fi_spark.embed.documents + fi_spark.match.candidates): every chunk of a
document arrives in one partition (in any order: complete_documents waits for all of them), chunks are
batch-encoded, coverage-pooled into 1 + N vectors per document, and each vector retrieves its top-k
templates; a document keeps `match.candidates_per_doc` candidates at or above the cosine threshold
`match.min_score`; only (doc, template, score, region, chunk) rows leave the worker. With
`embed.pooling_unit=tokens` the units are whole documents, whose token embeddings are pooled over
overlapping encoder windows (the released retriever's way, fi_spark.embed.pooling).
Then, in Spark (no collect of data-sized things; the share cap needs one count of the planned pairs):

1. global per-template cap: each template keeps its best-scoring documents, at most
   `match.max_per_template` or `match.max_template_share` of all planned pairs (this run's plan without
   the cap, plus the matches already stored), minus what earlier runs already gave it -- so no template
   dominates, as in the paper;
2. per document (groupBy + applyInPandas over `plan_document`, a pure function): the remaining
   candidates in `match.selection` order (best score, or the slot-count-weighted sample), kept by first
   fit within the token-for-token budget (`match.token_budget` x the document's tokens, each pair
   estimated as template tokens + `match.answer_tokens`) and `match.max_per_doc`, ranked 1..n.

The template cap runs first so that a document whose favourite template is full falls back to its next
candidates instead of going unmatched; the budget runs here, before instantiation, so no GPU time is
spent on a pair it would drop (and again on the real tokens in the final view, `final_budget`).

Accounting is per document: documents in = documents with >= 1 match + `match_rejects`
(no_chunks, below_min_score, over_budget, capped_out). A re-run skips documents already in either
table, so it adds nothing; new documents are matched against the latest index and the caps count the
matches already stored. Documents matched under an older index keep their matches.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType

from fi_spark import storage
from fi_spark.config.embed import EmbedConfig
from fi_spark.config.match import MatchConfig
from fi_spark.embed.documents import complete_documents, pool_chunks, pool_tokens
from fi_spark.embed.encoder import load_encoder, require_encoder_packages
from fi_spark.embed.placement import gpu_profile, on_encoder_thread, placed_embed
from fi_spark.index.artifact import IndexArtifact, latest_artifact
from fi_spark.index.build_index import index_root
from fi_spark.index.distribute import IndexHandle, ship_index
from fi_spark.match.candidates import (
    CANDIDATE_DDL,
    PlanRules,
    final_budget_keep,
    plan_document,
    slot_share_distance,
    slot_weights,
    template_tokens,
    top_candidates,
)
from fi_spark.match.usage import gini_from_histogram, top_share
from fi_spark.schemas import CHUNKS, DOCUMENTS, MATCH_REJECTS, MATCHES, TEMPLATES
from fi_spark.section import ConfigError
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.text.words import word_tokens

log = logging.getLogger(__name__)
STAGE = "match"
TABLES = StageTables(
    reads=(DOCUMENTS, CHUNKS, TEMPLATES),  # and the index artifact build_index wrote
    writes=(MATCHES, MATCH_REJECTS),
    funnel=(
        FunnelStep("documents", "matched a template", ("matches",), distinct="doc_id"),
        FunnelStep("pairs", "candidates (matches)", ("matches",)),
    ),
)
QUANTILES = (0.1, 0.5, 0.9)
REASONS = {
    "no_chunks": "the document has no chunks (prepare_corpus wrote none)",
    "below_min_score": "no template scored at least match.min_score",
    "over_budget": "every candidate's estimated pair exceeds the document's token budget (match.token_budget)",
    "capped_out": "every candidate template had reached match.max_per_template",
}


def run(ctx: StageContext) -> StageResult:
    started = time.monotonic()
    require_encoder_packages()
    cfg = ctx.config
    artifact = latest_artifact(index_root(ctx))
    if artifact.manifest.get("model") != cfg.embed.identity():
        raise ConfigError(
            f"embed.model={cfg.embed.identity()!r} but index {artifact.version} was built with "
            f"{artifact.manifest.get('model')!r}; run build_index with this model first"
        )
    pending = read_pending(ctx)
    rows_in = pending.count()
    if rows_in == 0:
        ctx.log.info("%s: every document already has matches or a reject", STAGE)
        return StageResult(STAGE, 0, 0, seconds=time.monotonic() - started)
    handle = ship_index(ctx.spark, ctx.engine.caps, artifact, cfg.index)
    ctx.log.info("%s: %d documents against index %s (%s, via %s)", STAGE, rows_in, artifact.version,
                 artifact.manifest.get("factory"), handle.strategy)  # fmt: skip
    units = unit_rows(ctx, pending, cfg.embed)
    partitions = cfg.match.partitions or cfg.engine.shuffle_partitions
    profile = match_profile(ctx, cfg.match)
    candidates = ctx.store.materialize(
        find_candidates(units, handle, cfg.embed, cfg.match, partitions, profile), f"{STAGE}/candidates"
    )
    stored = ctx.store.read(MATCHES)
    usage = stored.groupBy("template_id").agg(F.count("*").alias("used"))
    enriched = ctx.store.materialize(enrich_candidates(ctx, candidates), f"{STAGE}/enriched")
    bank = slot_counts(ctx.store.read(TEMPLATES))
    weights = slot_weights(bank, slot_counts(enriched))
    rules = plan_rules(cfg.match)
    planned = None
    if cfg.match.max_template_share is not None:  # the share is of all planned pairs: plan once without the cap
        planned = select_matches(enriched, usage, None, rules, weights).count() + stored.count()
    cap = template_cap(cfg.match, planned)
    selected = ctx.store.materialize(
        select_matches(enriched, usage, cap, rules, weights).withColumn("index_version", F.lit(artifact.version)),
        f"{STAGE}/selected",
    )
    rejects = reject_rows(pending, enriched, candidates, selected, cfg.match, artifact)
    added = {
        MATCHES.name: ctx.store.write(selected, MATCHES),
        MATCH_REJECTS.name: ctx.store.write(rejects, MATCH_REJECTS),
    }
    rejected = {r["reason"]: int(r["count"]) for r in rejects.groupBy("reason").count().collect()}
    matched = selected.select("doc_id").distinct().count()
    result = StageResult(STAGE, rows_in, matched, rejected, tables=added, seconds=time.monotonic() - started)
    result.metrics.update(match_metrics(ctx, selected, candidates, artifact, cap))
    kept_slots = {int(r["n_slots"]): int(r["count"]) for r in selected.groupBy("n_slots").count().collect()}
    result.metrics["slot_share_distance"] = slot_share_distance(bank, kept_slots)
    planned_tokens = selected.agg(F.sum("est_tokens").alias("t")).first()
    result.metrics["planned_est_tokens"] = float((planned_tokens["t"] if planned_tokens else None) or 0)
    result.artifacts.update(write_score_histogram(ctx, selected))
    result.check_accounting()
    return result


def read_pending(ctx: StageContext) -> DataFrame:
    """Documents with neither matches nor a match reject (doc_id, text)."""
    decided = ctx.store.read(MATCHES).select("doc_id").unionByName(ctx.store.read(MATCH_REJECTS).select("doc_id"))
    return ctx.store.read(DOCUMENTS).select("doc_id", "text").join(decided, "doc_id", "left_anti")


def unit_rows(ctx: StageContext, pending: DataFrame, cfg: EmbedConfig) -> DataFrame:
    """What gets embedded: the pending documents' chunks, or the documents themselves for token pooling; each row
    with its document's number of rows (`n_units`), so a partition knows when a document is complete whatever
    order its rows arrive in (fi_spark.embed.documents.complete_documents)."""
    if cfg.pooling_unit == "tokens":
        return pending.withColumn("n_units", F.lit(1))
    cols = ["doc_id", "chunk_id", "ordinal", "char_start", "char_end", "text", "n_tokens"]
    chunks = ctx.store.read(CHUNKS).select(*cols).join(pending.select("doc_id"), "doc_id", "left_semi")
    return chunks.join(chunks.groupBy("doc_id").agg(F.count("*").cast("int").alias("n_units")), "doc_id")


def match_profile(ctx: StageContext, cfg: MatchConfig) -> Any | None:
    """The GPU task profile for match's encoder tasks (fi_spark.embed.placement.gpu_profile), or None.

    match.gpu=auto: on classic Spark whose executors have GPUs (spark.executor.resource.gpu.amount > 0);
    true: there, and an error on classic Spark without executor GPUs (the tasks would never be scheduled);
    Sail and Spark Connect have no stage-level scheduling: one log line, and match runs without a profile.
    """
    if cfg.gpu is False:
        return None
    if not ctx.engine.caps.spark_context:
        if cfg.gpu is True:
            log.info("%s: match.gpu=true but the %s engine has no stage-level scheduling; running without a "
                     "GPU profile (the encoder uses embed.device)", STAGE, ctx.engine.caps.mode)  # fmt: skip
        return None
    amount = float(ctx.spark.conf.get("spark.executor.resource.gpu.amount", None) or 0)
    if amount <= 0:
        if cfg.gpu is True:
            raise ConfigError(
                "match.gpu=true but the executors have no GPUs (spark.executor.resource.gpu.amount is not set); "
                "set it on the cluster or use match.gpu=auto"
            )
        return None
    if "profile" not in inspect.signature(DataFrame.mapInPandas).parameters:  # Spark 3.5 (EMR 7) has no profile=
        log.info("%s: this pyspark's mapInPandas takes no resource profile (Spark >= 4.0 does); running without "
                 "a GPU profile (tasks given a GPU by spark.task.resource.gpu.amount still use it)", STAGE)  # fmt: skip
        return None
    ctx.log.info("%s: encoder tasks ask for %g GPU each (stage-level scheduling)", STAGE, cfg.gpu_amount)
    return gpu_profile(cfg.gpu_amount)


def find_candidates(
    units: DataFrame,
    handle: IndexHandle,
    embed: EmbedConfig,
    cfg: MatchConfig,
    partitions: int,
    profile: Any | None = None,
) -> DataFrame:
    """Per partition: encode, pool, search -> CANDIDATE_DDL rows (fi_spark.match.candidates); `profile`: the
    resource profile its tasks run under (`match_profile`), passed only when there is one."""
    order = ["doc_id", "ordinal"] if embed.pooling_unit == "chunks" else ["doc_id"]
    # every row of a document in one partition; the sort keeps a document's rows together on classic Spark (Sail
    # drops it before mapInPandas: complete_documents does not need it, it only keeps its carry-over small)
    grouped = units.repartition(partitions, "doc_id").sortWithinPartitions(*order)
    fn = partial(_match_partition, handle, embed, cfg.gpu_batch_size, cfg.top_k, cfg.min_score, cfg.candidates_per_doc)
    if profile is None:
        return grouped.mapInPandas(fn, CANDIDATE_DDL)
    return grouped.mapInPandas(fn, CANDIDATE_DDL, profile=profile)


def _match_partition(
    handle: IndexHandle,
    embed: EmbedConfig,
    gpu_batch_size: int,
    top_k: int,
    min_score: float,
    per_doc: int,
    batches: Iterator[pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    embed = placed_embed(embed, gpu_batch_size)  # this task's GPU, if Spark gave it one
    # the encoder runs on the process's one encoder thread: a thread per task grew memory per task (placement.py)
    model = on_encoder_thread(load_encoder, embed)  # once per worker process and device (cached)
    loaded = handle.load()  # once per worker process (cached by index version)
    pool = pool_chunks if embed.pooling_unit == "chunks" else pool_tokens
    for docs in complete_documents(batches):
        yield top_candidates(on_encoder_thread(pool, docs, model, embed), loaded, top_k, min_score, per_doc)


def plan_rules(cfg: MatchConfig) -> PlanRules:
    return PlanRules(
        max_per_doc=cfg.max_per_doc, selection=cfg.selection, budget_ratio=cfg.token_budget,
        answer_tokens=cfg.answer_tokens, seed=cfg.seed,
    )  # fmt: skip


def enrich_candidates(ctx: StageContext, candidates: DataFrame) -> DataFrame:
    """Candidates with a template plus what the rules need: n_slots, template_tokens, doc_tokens."""
    templates = ctx.store.read(TEMPLATES).select("template_id", "n_slots", "template")
    tokens = templates.select("template").distinct().mapInPandas(_template_tokens, "template string, tt int")
    info = templates.join(tokens, "template").select("template_id", "n_slots", F.col("tt").alias("template_tokens"))
    docs = ctx.store.read(DOCUMENTS).select("doc_id", F.col("n_words").alias("doc_tokens"))
    return (
        candidates.where(F.col("template_id").isNotNull())
        .join(info, "template_id", "left")
        .join(docs, "doc_id", "left")
        .withColumn("n_slots", F.coalesce("n_slots", F.lit(0)))
        .withColumn("template_tokens", F.coalesce("template_tokens", F.lit(0)))
        .withColumn("doc_tokens", F.coalesce("doc_tokens", F.lit(0)))
    )


def _template_tokens(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
    for b in batches:
        yield pd.DataFrame({"template": b["template"], "tt": [template_tokens(t) for t in b["template"]]})


def slot_counts(frame: DataFrame) -> dict[int, int]:
    """{n_slots: rows} of a templates or candidates frame (a handful of rows to the driver)."""
    return {int(r["n_slots"]): int(r["count"]) for r in frame.groupBy("n_slots").count().collect()}


def template_cap(cfg: MatchConfig, planned_pairs: int | None) -> int | None:
    """The per-template cap: the tighter of max_per_template and max_template_share x all planned pairs."""
    caps = [c for c in (cfg.max_per_template,) if c is not None]
    if cfg.max_template_share is not None and planned_pairs is not None:
        caps.append(max(1, math.floor(cfg.max_template_share * planned_pairs)))
    return min(caps) if caps else None


def select_matches(
    candidates: DataFrame, usage: DataFrame, cap: int | None, rules: PlanRules, weights: dict[int, float] | None = None
) -> DataFrame:
    """The global per-template cap, then each document's plan (`plan_document`); adds est_tokens and rank.

    `candidates` carries doc_id, template_id, score, n_slots, template_tokens, doc_tokens (`enrich_candidates`)
    and any other columns, which are passed through.
    """
    c = candidates.where(F.col("template_id").isNotNull())
    if cap is not None:
        c = c.join(usage, "template_id", "left").withColumn("used", F.coalesce(F.col("used"), F.lit(0)))
        by_template = Window.partitionBy("template_id").orderBy(F.desc("score"), F.asc("doc_id"))
        c = c.withColumn("_t", F.row_number().over(by_template)).where(F.col("_t") + F.col("used") <= cap)
        c = c.drop("_t", "used")
    schema = StructType(
        [*c.schema.fields, StructField("est_tokens", IntegerType()), StructField("rank", IntegerType())]
    )
    return c.groupBy("doc_id").applyInPandas(partial(_plan_group, rules, weights or {}, schema.fieldNames()), schema)


def _plan_group(rules: PlanRules, weights: dict[int, float], columns: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    out = plan_document(frame, int(frame["doc_tokens"].iloc[0]), rules, weights)
    out["est_tokens"] = out["est_tokens"].astype("int32")
    return out[columns]


def final_budget(ctx: StageContext, view: DataFrame) -> DataFrame:
    """The rows of `view` (pair lineage, already above the judge threshold) that fit their document's budget.

    Budget: `match.token_budget` x documents.n_words; each pair costs its instruction's word tokens plus
    its `answer_tokens`; first fit, best verdicts first (`final_budget_keep`). Kept rows come back unchanged.
    """
    ratio = ctx.config.match.token_budget
    if ratio is None:
        return view
    expected = F.col("judge_expected_score") if "judge_expected_score" in view.columns else F.lit(None)
    docs = ctx.store.read(DOCUMENTS).select("doc_id", F.col("n_words").alias("doc_tokens"))
    rows = view.join(docs, "doc_id", "left").select(
        "pair_id", "doc_id", "instruction", "answer_tokens", "judge_score",
        expected.cast("double").alias("expected_score"), "match_rank", "doc_tokens",
    )  # fmt: skip
    keep = rows.groupBy("doc_id").applyInPandas(partial(_final_group, ratio), "pair_id string")
    return view.join(keep, "pair_id", "left_semi")


def _final_group(ratio: float, frame: pd.DataFrame) -> pd.DataFrame:
    tokens = [len(word_tokens(i)) + int(a) for i, a in zip(frame["instruction"], frame["answer_tokens"], strict=True)]
    kept = final_budget_keep(frame.assign(tokens=tokens), int(frame["doc_tokens"].fillna(0).iloc[0]), ratio)
    return pd.DataFrame({"pair_id": pd.Series(kept, dtype=object)})  # typed even when empty (Sail needs it)


def reject_rows(
    pending: DataFrame,
    enriched: DataFrame,
    candidates: DataFrame,
    selected: DataFrame,
    cfg: MatchConfig,
    artifact: IndexArtifact,
) -> DataFrame:
    """One reject per pending document without a selected match, with the reason and the numbers behind it."""
    per_doc = candidates.groupBy("doc_id").agg(
        F.max(F.when(F.col("template_id").isNotNull(), 1).otherwise(0)).alias("had"),
        F.max("score").alias("best"),
        F.sum(F.when(F.col("template_id").isNotNull(), 1).otherwise(0)).alias("n"),
    )
    ratio = cfg.token_budget
    smallest = enriched.groupBy("doc_id").agg(
        (F.min("template_tokens") + F.lit(cfg.answer_tokens)).alias("est"), F.first("doc_tokens").alias("doc_tokens")
    )
    missing = pending.select("doc_id").join(selected.select("doc_id").distinct(), "doc_id", "left_anti")
    rows = missing.join(per_doc, "doc_id", "left").join(smallest, "doc_id", "left")
    over = F.coalesce(F.col("est") > F.col("doc_tokens") * F.lit(ratio), F.lit(False)) if ratio else F.lit(False)
    best = F.format_number(F.col("best"), 3)
    reason = (
        F.when(F.col("had").isNull(), "no_chunks")
        .when(F.col("had") == 0, "below_min_score")
        .when(over, "over_budget")
        .otherwise("capped_out")
    )
    detail = (
        F.when(F.col("had").isNull(), F.lit("no chunks to embed"))
        .when(
            F.col("had") == 0,
            F.concat(F.lit("best score "), F.coalesce(best, F.lit("n/a")), F.lit(f" < {cfg.min_score}")),
        )
        .when(
            over,
            F.concat(
                F.lit("smallest pair estimate "),
                F.col("est").cast("string"),
                F.lit(f" tokens > {ratio} x "),
                F.col("doc_tokens").cast("string"),
                F.lit(" document tokens"),
            ),
        )  # fmt: skip
        .otherwise(F.concat(F.col("n").cast("string"), F.lit(" candidate templates, all at their cap")))
    )
    return rows.select(
        "doc_id", reason.alias("reason"), detail.alias("detail"), F.lit(artifact.version).alias("index_version")
    )


def match_metrics(
    ctx: StageContext, selected: DataFrame, candidates: DataFrame, artifact: IndexArtifact, cap: int | None
) -> dict[str, float]:
    """Score distribution, template usage (distinct, top share, Gini) from small aggregations."""
    stats = selected.agg(
        F.count("*").alias("n"),
        F.avg("score").alias("mean"),
        # one scalar percentile per call: Sail 0.7 has no array form of percentile_approx
        *[F.percentile_approx(F.col("score").cast("double"), p, 1000).alias(f"q{i}") for i, p in enumerate(QUANTILES)],
        F.avg(F.when(F.col("region") == 0, 1.0).otherwise(0.0)).alias("global_share"),
    ).collect()[0]
    per_template = selected.groupBy("template_id").agg(F.count("*").alias("c"))
    hist = {int(r["c"]): int(r["m"]) for r in per_template.groupBy("c").agg(F.count("*").alias("m")).collect()}
    n_candidates = candidates.where(F.col("template_id").isNotNull()).count()
    n_templates = int(artifact.manifest.get("n", 0))
    q = [float("nan") if stats[f"q{i}"] is None else float(stats[f"q{i}"]) for i in range(len(QUANTILES))]
    return {
        "matches": float(stats["n"]),
        "candidates": float(n_candidates),
        "templates_in_index": float(n_templates),
        "distinct_templates_used": float(sum(hist.values())),
        "top_template_share": top_share(hist),
        "template_gini": gini_from_histogram(hist, n_templates),
        "template_gini_used": gini_from_histogram(hist),
        "max_template_uses": float(max(hist) if hist else 0),
        "template_cap": float(cap or 0),
        "score_mean": float(stats["mean"] or float("nan")),
        "score_p10": float(q[0]),
        "score_p50": float(q[1]),
        "score_p90": float(q[2]),
        "global_vector_share": float(stats["global_share"] or 0.0),
    }


def write_score_histogram(ctx: StageContext, selected: DataFrame) -> dict[str, str]:
    """A 20-bin histogram of match scores as a small JSON artifact (bins computed in Spark)."""
    if not ctx.work_dir or storage.is_remote(ctx.work_dir):
        return {}
    bins = selected.groupBy(F.least(F.floor(F.greatest(F.col("score"), F.lit(0.0)) * 20), F.lit(19)).alias("b")).count()
    counts = {int(r["b"]): int(r["count"]) for r in bins.collect()}
    path = os.path.join(ctx.work_dir, "match_score_histogram.json")
    edges = np.round(np.linspace(0, 1, 21), 2).tolist()
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"bin_edges": edges, "counts": [counts.get(i, 0) for i in range(20)]}, fh)
    return {"match_score_histogram": path}
