"""Stage `genericize`: queries -> `templates`, `template_rejects` (FineInstructions step 2).

Each query not handled yet is sent to the genericizer LLM (prompt: conf/prompts/<templates.prompt>.yaml,
answer schema: fi_spark.templates.GenericizeAnswer as structured output) through fi_spark.llm.complete,
which keeps every answer in the `llm_responses` ledger: a re-run makes no HTTP calls. Answers are
validated (fi_spark.stages.template_rows) and near-duplicates merged into one template whose
`source_query_ids` lists every query behind it.

Every pending query ends in exactly one place: a template (new, or merged with others), a stored
reject (validation reason, or llm_<final LLM reason>), or -- for transient LLM failures only -- a count
in this run's result (`llm_<reason>`) with nothing stored, so the next run sends it again.

A query whose template merges into a template stored by an *earlier* run is counted as out but its id
is not appended to that template's `source_query_ids` (tables are append-only); such queries are
re-checked on the next run from the ledger, without HTTP calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from fi_spark.config import PromptSpec, load_prompt
from fi_spark.generate.prompting import chat_messages
from fi_spark.llm.types import TRANSIENT_REASONS
from fi_spark.schemas import LLM_RESPONSES, QUERIES, TEMPLATE_REJECTS, TEMPLATES
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.stages.template_rows import check_templates, merge_templates, slot_histogram
from fi_spark.templates import check_genericize_prompt, genericize_schema

STAGE = "genericize"
NOT_STORED = (*TRANSIENT_REASONS, "no_result")
REQUEST_SCHEMA = StructType([StructField("key", StringType()), StructField("messages", StringType())])
ANSWER_DDL = "source_key string, template string, description string, reason string, detail string"


def run(ctx: StageContext) -> StageResult:
    started = time.monotonic()
    cfg = ctx.config.templates
    spec = load_prompt(cfg.prompt)
    check_genericize_prompt(spec)
    if not ctx.store.exists(QUERIES):
        raise ValueError("genericize needs the `queries` table: run ingest_queries first")
    pending = read_pending(ctx)
    if cfg.sample_queries:  # a fixed sample of all queries, so a re-run has nothing new to send
        sample = ctx.store.read(QUERIES).select("query_id").orderBy(F.sha2("query_id", 256)).limit(cfg.sample_queries)
        pending = ctx.store.materialize(pending.join(sample, "query_id", "left_semi"), f"{STAGE}/pending")
    rows_in = pending.count()
    if rows_in == 0:
        ctx.log.info("%s: every query already has a template or a reject", STAGE)
        return StageResult(STAGE, 0, 0, seconds=time.monotonic() - started)

    requests = pending.select("query_id", "text").mapInPandas(partial(_requests, spec), REQUEST_SCHEMA)
    from fi_spark.llm import complete

    llm = complete(ctx, requests, stage=STAGE, response_schema=genericize_schema(spec), schema_name="template",
                   max_tokens=cfg.max_tokens, temperature=cfg.temperature)  # fmt: skip
    candidates = answers(ctx, pending, llm.results, spec)
    checked = ctx.store.materialize(check_templates(candidates, cfg), f"{STAGE}/checked")

    valid = checked.where(F.col("reason").isNull())
    stored_rejects = checked.where(
        F.col("reason").isNotNull() & ~F.col("reason").isin(*[f"llm_{r}" for r in NOT_STORED])
    )
    added = {
        TEMPLATES.name: ctx.store.write(merge_templates(valid), TEMPLATES),
        TEMPLATE_REJECTS.name: ctx.store.write(reject_rows(stored_rejects), TEMPLATE_REJECTS),
    }
    counts = {r["reason"]: int(r["count"]) for r in checked.groupBy("reason").count().collect()}
    rows_out = counts.pop(None, 0)
    result = StageResult(STAGE, rows_in, rows_out, counts, tables=added, seconds=time.monotonic() - started)
    result.metrics.update({f"llm.{k}": v for k, v in llm.metrics.items()})
    result.metrics.update(slot_histogram(valid))
    result.metrics["templates_new"] = float(added[TEMPLATES.name])
    result.metrics["templates_total"] = float(ctx.store.count(TEMPLATES))
    result.metrics["merged_queries"] = float(rows_out - valid.select("template_id").distinct().count())
    result.check_accounting()
    return result


def read_pending(ctx: StageContext) -> DataFrame:
    """Queries that are neither a source of a stored template nor a stored reject."""
    sources = ctx.store.read(TEMPLATES).select(F.explode("source_query_ids").alias("query_id"))
    rejected = ctx.store.read(TEMPLATE_REJECTS).select(F.col("source_key").alias("query_id"))
    done = sources.unionByName(rejected)
    return ctx.store.read(QUERIES).select("query_id", "text").join(done, "query_id", "left_anti")


def _requests(spec: PromptSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        messages = [json.dumps(chat_messages(spec, {"query": q}), ensure_ascii=False) for q in batch["text"]]
        yield pd.DataFrame({"key": batch["query_id"], "messages": messages})


def answers(ctx: StageContext, pending: DataFrame, results: DataFrame, spec: PromptSpec) -> DataFrame:
    """Pending queries + LLM results -> candidate rows for check_templates (LLM failures carry a reason)."""
    parsed = results.select(
        F.col("key").alias("source_key"), "request_id", F.coalesce("parsed", "content").alias("parsed"),
        F.col("error_reason").alias("llm_reason"), "error",
    ).mapInPandas(_parse_batches, ANSWER_DDL + ", request_id string")
    models = ctx.store.read(LLM_RESPONSES).select("request_id", "model").dropDuplicates(["request_id"])
    return (
        pending.select(F.col("query_id").alias("source_key"), F.col("query_id"), F.col("text").alias("query"))
        .join(parsed, "source_key", "left")
        .join(models, "request_id", "left")
        .withColumn("reason", F.coalesce(F.col("reason"), F.when(F.col("request_id").isNull(), F.lit("llm_no_result"))))
        .withColumn("origin", F.lit(f"genericize:{spec.version_tag}"))
    )


def _parse_batches(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from fi_spark.templates import parse_answer

    for batch in batches:
        rows: list[tuple[object, ...]] = []
        for key, rid, answer, llm_reason, error in batch.itertuples(index=False, name=None):
            if isinstance(llm_reason, str):
                rows.append((key, None, None, f"llm_{llm_reason}", error, rid))
                continue
            template, desc, problem = parse_answer(answer)
            reason = "llm_unusable_answer" if problem else None
            rows.append((key, template, desc, reason, problem, rid))
        yield pd.DataFrame(rows, columns=["source_key", "template", "description", "reason", "detail", "request_id"])


def reject_rows(rejects: DataFrame) -> DataFrame:
    return rejects.select(
        "source_key", "reason", "detail", "template", F.col("description").alias("compatible_doc_description"),
        "query", "origin", "request_id",
    )  # fmt: skip
