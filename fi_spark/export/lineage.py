"""Lineage: every pair joined back to its document, chunk, dedup cluster, template/query, match, grounding,
judge verdict, models and prompt versions -- and the final set, which is that view above the judge threshold
and within each document's token budget (match.token_budget, fi_spark.match.match.final_budget).

Tables written by other stages are joined by name with left joins, so a pair never disappears from the
view because an upstream table lacks a row or a column; the lineage test checks that every final pair
does find its document, chunk, template and verdict. Optional upstream columns (a template's source
query, a near-dup cluster) appear when the upstream table has them.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fi_spark.schemas import CHUNKS, DOCUMENTS, DUPLICATES, JUDGED, PAIRS
from fi_spark.stages.base import StageContext

QUERY_COLUMNS = ("source_query_ids",)  # optional templates columns carried into the lineage
TEMPLATE_EXTRA = {"origin": "template_origin", "model": "template_model"}  # templates column -> lineage name

LINEAGE_COLUMNS = {
    "doc_id": "source document (documents.doc_id)",
    "source": "input the document came from (documents.metadata['source'], else its input file)",
    "source_url": "the document's URL, when the input had one",
    "chunk_id": "the matched chunk whose text the pair was made from (chunks.chunk_id)",
    "dedup_cluster": "near-duplicate cluster of the document (dup_clusters), else the document itself",
    "duplicates_dropped": "input documents dropped as duplicates of this document",
    "template_id": "instruction template (templates.template_id)",
    "template": "the template text with its `<fi>` slots",
    "source_query_ids": "the user queries the template was made from (queries.query_id)",
    "template_origin": "how the template was made: genericize:<prompt version> or bank:<file>",
    "template_model": "the genericizer model (empty for a template bank)",
    "match_score": "similarity of the template's document description and the document (match)",
    "match_rank": "rank of the template among the document's matches",
    "grounding": "share of answer tokens inside verbatim excerpts of the source",
    "judge_score": "the judge's rubric score",
    "judge_expected_score": "expected score from the score token's logprobs (null when the server gave none)",
    "judge_rationale": "the judge's short rationale (judge.rationale)",
    "instantiate_model": "model that wrote the instruction and answer",
    "instantiate_prompt": "instantiate prompt version (name.version+content hash)",
    "judge_model": "model that judged the pair",
    "judge_prompt": "judge prompt version",
}


def pair_lineage(ctx: StageContext) -> DataFrame:
    """Every pair with its lineage columns (judge columns null for pairs not judged yet)."""
    pairs = ctx.store.read(PAIRS)
    judged = ctx.store.read(JUDGED).select(
        "pair_id",
        F.col("score").alias("judge_score"),
        F.col("expected_score").alias("judge_expected_score"),
        F.col("rationale").alias("judge_rationale"),
        F.col("error_reason").alias("judge_error"),
        F.col("model").alias("judge_model"),
        F.col("prompt_version").alias("judge_prompt"),
        F.col("request_id").alias("judge_request_id"),
    )
    docs = ctx.store.read(DOCUMENTS).select(
        "doc_id",
        F.coalesce(F.col("metadata").getItem("source"), F.col("input_file"), F.lit("unknown")).alias("source"),
        F.col("url").alias("source_url"),
    )
    chunks = ctx.store.read(CHUNKS).select("chunk_id", F.col("ordinal").alias("chunk_ordinal"))
    dropped = (
        ctx.store.read(DUPLICATES)
        .groupBy(F.col("kept_id").alias("doc_id"))
        .agg(F.count("*").alias("duplicates_dropped"))
    )
    view = (
        pairs.withColumnRenamed("model", "instantiate_model")
        .withColumnRenamed("prompt_version", "instantiate_prompt")
        .withColumnRenamed("request_id", "instantiate_request_id")
        .join(judged, "pair_id", "left")
        .join(docs, "doc_id", "left")
        .join(chunks, "chunk_id", "left")
        .join(dropped, "doc_id", "left")
        .withColumn("duplicates_dropped", F.coalesce("duplicates_dropped", F.lit(0)))
    )
    clusters = ctx.store.by_name("dup_clusters")
    if clusters is not None and {"cluster_id", "doc_id"} <= set(clusters.columns):
        view = view.join(clusters.select("doc_id", F.col("cluster_id").alias("_cluster")), "doc_id", "left")
        view = view.withColumn("dedup_cluster", F.coalesce("_cluster", "doc_id")).drop("_cluster")
    else:
        view = view.withColumn("dedup_cluster", F.col("doc_id"))
    templates = ctx.store.by_name("templates")
    if templates is not None and "template_id" in templates.columns:
        templates = _with_later_sources(templates, ctx.store.by_name("template_sources"))
        keep = [F.col(c) for c in ("template_id", "template", *QUERY_COLUMNS) if c in templates.columns]
        keep += [F.col(c).alias(alias) for c, alias in TEMPLATE_EXTRA.items() if c in templates.columns]
        view = view.join(templates.select(*keep), "template_id", "left")
    if "template" not in view.columns:
        view = view.withColumn("template", F.lit(None).cast("string"))
    return view


def _with_later_sources(templates: DataFrame, sources: DataFrame | None) -> DataFrame:
    """`source_query_ids` plus the queries `template_sources` maps to the template (those merged into it by
    later runs, which its append-only row cannot list)."""
    if sources is None or "source_query_ids" not in templates.columns or "query_id" not in sources.columns:
        return templates
    later = sources.groupBy("template_id").agg(F.collect_set("query_id").alias("_later"))
    merged = F.array_union("source_query_ids", F.coalesce("_later", F.array().cast("array<string>")))
    return (
        templates.join(later, "template_id", "left").withColumn("source_query_ids", F.array_sort(merged)).drop("_later")
    )


def final_pairs(ctx: StageContext, threshold: float | None = None) -> DataFrame:
    """Pairs whose judge score is at or above `threshold` (default: judge.threshold) and that fit their
    document's token budget (best verdicts first), with lineage."""
    from fi_spark.match.match import final_budget

    cut = ctx.config.judge.threshold if threshold is None else threshold
    kept = final_budget(ctx, pair_lineage(ctx).where(F.col("judge_score") >= F.lit(cut)))
    return at_most_per_instruction(kept, ctx.config.export.max_per_instruction)


def at_most_per_instruction(view: DataFrame, n: int | None) -> DataFrame:
    """At most `n` rows of `view` per instruction (compared without case, spacing or punctuation), the best
    verdicts first: one template filled the same way for many documents would otherwise fill the export with
    one request (a window partitioned by the instruction: no driver collect). None = no cap."""
    if not n:
        return view
    key = F.trim(F.regexp_replace(F.lower(F.col("instruction")), r"[^\p{L}\p{N}]+", " "))
    expected = F.col("judge_expected_score") if "judge_expected_score" in view.columns else F.lit(None)
    order = Window.partitionBy(key).orderBy(F.desc("judge_score"), F.desc_nulls_last(expected), F.asc("pair_id"))
    return view.withColumn("_nth", F.row_number().over(order)).where(F.col("_nth") <= n).drop("_nth")
