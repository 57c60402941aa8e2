"""Stage `match`: documents (chunks) + the template index -> `matches`, `match_rejects`.

Per partition (mapInPandas, fi_spark.embed.documents + fi_spark.index.candidates): chunks arrive
grouped by document, are batch-encoded, coverage-pooled into 1 + N vectors per document, and each
vector retrieves its top-k templates; only (doc, template, score, region, chunk) rows leave the
worker. Then, in Spark with window functions (no collect):

1. global per-template cap: each template keeps its best-scoring documents, at most
   `match.max_per_template` (or `max_template_share` of the documents) minus what earlier runs
   already gave it -- so no template dominates, as in the paper;
2. per-document cap: each document keeps its `match.max_per_document` best remaining templates,
   ranked 1..n.

The template cap runs first so that a document whose favourite template is full falls back to
its next candidates instead of going unmatched (candidates are top_k > max_per_doc per document).

Accounting is per document: documents in = documents with >= 1 match + `match_rejects`
(no_chunks, below_min_score, capped_out). A re-run skips documents already in either table, so
it adds nothing; new documents are matched against the latest index and the caps count the
matches already stored. Documents matched under an older index keep their matches.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config import ConfigError, EmbedConfig, MatchConfig
from fi_spark.embed.documents import complete_documents, pool_chunks, pool_tokens
from fi_spark.embed.encoder import load_encoder
from fi_spark.index.artifact import IndexArtifact, latest_artifact
from fi_spark.index.candidates import CANDIDATE_DDL, top_candidates
from fi_spark.index.distribute import IndexHandle, ship_index
from fi_spark.index.usage import gini_from_histogram, top_share
from fi_spark.schemas import CHUNKS, DOCUMENTS, MATCH_REJECTS, MATCHES
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.stages.build_index import index_root

STAGE = "match"
TABLES = StageTables(
    reads=(DOCUMENTS, CHUNKS),  # and the index artifact build_index wrote
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
    "capped_out": "every candidate template had reached match.max_per_template",
}


def run(ctx: StageContext) -> StageResult:
    started = time.monotonic()
    cfg = ctx.config
    artifact = latest_artifact(index_root(ctx))
    if artifact.manifest.get("model") != cfg.embed.model:
        raise ConfigError(
            f"embed.model={cfg.embed.model!r} but index {artifact.version} was built with "
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
    candidates = ctx.store.materialize(
        find_candidates(units, handle, cfg.embed, cfg.match, partitions), f"{STAGE}/candidates"
    )
    usage = ctx.store.read(MATCHES).groupBy("template_id").agg(F.count("*").alias("used"))
    cap = template_cap(cfg.match, rows_in)
    selected = ctx.store.materialize(
        select_matches(candidates, usage, cap, cfg.match.max_per_doc).withColumn(
            "index_version", F.lit(artifact.version)
        ),
        f"{STAGE}/selected",
    )
    rejects = reject_rows(pending, candidates, selected, cfg.match, artifact)
    added = {
        MATCHES.name: ctx.store.write(selected, MATCHES),
        MATCH_REJECTS.name: ctx.store.write(rejects, MATCH_REJECTS),
    }
    rejected = {r["reason"]: int(r["count"]) for r in rejects.groupBy("reason").count().collect()}
    matched = selected.select("doc_id").distinct().count()
    result = StageResult(STAGE, rows_in, matched, rejected, tables=added, seconds=time.monotonic() - started)
    result.metrics.update(match_metrics(ctx, selected, candidates, artifact, cap))
    result.artifacts.update(write_score_histogram(ctx, selected))
    result.check_accounting()
    return result


def read_pending(ctx: StageContext) -> DataFrame:
    """Documents with neither matches nor a match reject (doc_id, text)."""
    decided = ctx.store.read(MATCHES).select("doc_id").unionByName(ctx.store.read(MATCH_REJECTS).select("doc_id"))
    return ctx.store.read(DOCUMENTS).select("doc_id", "text").join(decided, "doc_id", "left_anti")


def unit_rows(ctx: StageContext, pending: DataFrame, cfg: EmbedConfig) -> DataFrame:
    """What gets embedded: the pending documents' chunks, or the documents themselves for token pooling."""
    if cfg.pooling_unit == "tokens":
        return pending
    cols = ["doc_id", "chunk_id", "ordinal", "char_start", "char_end", "text", "n_tokens"]
    return ctx.store.read(CHUNKS).select(*cols).join(pending.select("doc_id"), "doc_id", "left_semi")


def find_candidates(
    units: DataFrame, handle: IndexHandle, embed: EmbedConfig, cfg: MatchConfig, partitions: int
) -> DataFrame:
    """Per partition: encode, pool, search -> CANDIDATE_DDL rows (fi_spark.index.candidates)."""
    order = ["doc_id", "ordinal"] if embed.pooling_unit == "chunks" else ["doc_id"]
    grouped = units.repartition(partitions, "doc_id").sortWithinPartitions(*order)
    return grouped.mapInPandas(partial(_match_partition, handle, embed, cfg.top_k, cfg.min_score), CANDIDATE_DDL)


def _match_partition(
    handle: IndexHandle, embed: EmbedConfig, top_k: int, min_score: float, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    model = load_encoder(embed)  # once per worker process (cached)
    loaded = handle.load()  # once per worker process (cached by index version)
    pool = pool_chunks if embed.pooling_unit == "chunks" else pool_tokens
    for docs in complete_documents(batches):
        yield top_candidates(pool(docs, model, embed), loaded, top_k, min_score)


def template_cap(cfg: MatchConfig, n_docs: int) -> int | None:
    """The per-template cap for this run: the tighter of max_per_template and max_template_share * docs."""
    caps = [c for c in (cfg.max_per_template,) if c is not None]
    if cfg.max_template_share is not None:
        caps.append(max(1, math.floor(cfg.max_template_share * n_docs)))
    return min(caps) if caps else None


def select_matches(candidates: DataFrame, usage: DataFrame, cap: int | None, max_per_doc: int) -> DataFrame:
    """Apply the global per-template cap, then the per-document cap; adds `rank` (1 = best)."""
    c = candidates.where(F.col("template_id").isNotNull())
    if cap is not None:
        c = c.join(usage, "template_id", "left").withColumn("used", F.coalesce(F.col("used"), F.lit(0)))
        by_template = Window.partitionBy("template_id").orderBy(F.desc("score"), F.asc("doc_id"))
        c = c.withColumn("_t", F.row_number().over(by_template)).where(F.col("_t") + F.col("used") <= cap)
        c = c.drop("_t", "used")
    by_doc = Window.partitionBy("doc_id").orderBy(F.desc("score"), F.asc("template_id"))
    return c.withColumn("rank", F.row_number().over(by_doc)).where(F.col("rank") <= max_per_doc)


def reject_rows(
    pending: DataFrame, candidates: DataFrame, selected: DataFrame, cfg: MatchConfig, artifact: IndexArtifact
) -> DataFrame:
    """One reject per pending document without a selected match, with the reason and the numbers behind it."""
    per_doc = candidates.groupBy("doc_id").agg(
        F.max(F.when(F.col("template_id").isNotNull(), 1).otherwise(0)).alias("had"),
        F.max("score").alias("best"),
        F.sum(F.when(F.col("template_id").isNotNull(), 1).otherwise(0)).alias("n"),
    )
    missing = pending.select("doc_id").join(selected.select("doc_id").distinct(), "doc_id", "left_anti")
    rows = missing.join(per_doc, "doc_id", "left")
    best = F.format_number(F.col("best"), 3)
    reason = (
        F.when(F.col("had").isNull(), "no_chunks").when(F.col("had") == 0, "below_min_score").otherwise("capped_out")
    )
    detail = (
        F.when(F.col("had").isNull(), F.lit("no chunks to embed"))
        .when(
            F.col("had") == 0,
            F.concat(F.lit("best score "), F.coalesce(best, F.lit("n/a")), F.lit(f" < {cfg.min_score}")),
        )
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
