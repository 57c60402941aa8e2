"""Stage `genericize`: queries -> `templates`, `template_sources`, `template_rejects` (FineInstructions step 2).

Each query not handled yet is sent to the genericizer LLM (prompt: conf/prompts/<templates.prompt>.yaml,
answer schema: fi_spark.genericize.GenericizeAnswer) by the shared loop (fi_spark.stages.llm_stage), whose
ledger makes a re-run send nothing. Answers are validated (fi_spark.genericize.rows) and near-duplicates
merged into one template whose `source_query_ids` lists every query behind it; `template_sources` records
the template of every genericized query, including one whose template merges into a template stored by an
*earlier* run (append-only tables cannot add it to that row's `source_query_ids`; the lineage reads both).

Every pending query ends in one place: a template (new, or merged with others), a stored reject (validation
reason, or llm_<final LLM reason>), or -- transient LLM failures -- a count (`llm_<reason>`), sent again next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from fi_spark.genericize import check_genericize_prompt, genericize_schema
from fi_spark.genericize.prompts import FROM_QUERY_REASONS
from fi_spark.genericize.rows import check_templates, merge_templates, slot_histogram
from fi_spark.prompting.messages import chat_messages
from fi_spark.prompting.spec import PromptSpec, load_prompt
from fi_spark.schemas import QUERIES, TEMPLATE_REJECTS, TEMPLATE_SOURCES, TEMPLATES
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.stages.llm_stage import LLM_TABLES, LLMStage, Row, encode, llm_failure
from fi_spark.text.instructions import query_problem

STAGE = "genericize"
TABLES = StageTables(
    reads=(QUERIES,),
    writes=(TEMPLATES, TEMPLATE_SOURCES, TEMPLATE_REJECTS, *LLM_TABLES),
    funnel=(FunnelStep("queries", "templates kept", ("templates",)),),
)


class Genericize(LLMStage):
    name, key, tables, rejects = STAGE, "query_id", TABLES, TEMPLATE_REJECTS
    checked = StructType([StructField(c, StringType()) for c in ("query_id", "template", "description", "reason",
                                                                 "detail")])  # fmt: skip
    check_columns = ("skip_reason", "skip_detail", "text")

    def setup(self) -> None:
        self.cfg = self.ctx.config.templates
        self.spec: PromptSpec = load_prompt(self.cfg.prompt)
        check_genericize_prompt(self.spec)

    def pending(self) -> DataFrame:
        """Queries neither a source of a stored template nor a stored reject (a sample: templates.sample_queries)."""
        store = self.ctx.store
        sources = store.read(TEMPLATES).select(F.explode("source_query_ids").alias("query_id"))  # pre-template_sources
        done = sources.unionByName(store.read(TEMPLATE_SOURCES).select("query_id"))
        done = done.unionByName(store.read(TEMPLATE_REJECTS).select(F.col("source_key").alias("query_id")))
        queries = store.read(QUERIES).select("query_id", "text")
        gated = queries.mapInPandas(partial(_gate, self.cfg.extractive_only), f"{QUERY_GATE_DDL}")
        gated = self.ctx.store.materialize(gated, f"{self.name}/gated")
        todo = gated.join(done, "query_id", "left_anti")
        skipped = todo.where(F.col("skip_reason") != "")  # decided here, no LLM call: never sampled out
        usable = gated.where(F.col("skip_reason") == "")
        sampled = self.sample(todo.where(F.col("skip_reason") == ""), usable, self.cfg.sample_queries)
        return self.ctx.store.materialize(skipped.unionByName(sampled), f"{self.name}/queued")  # sample(): /pending

    def requests(self, pending: DataFrame) -> DataFrame:
        return (
            pending.where(F.col("skip_reason") == "")
            .select("query_id", "text")
            .mapInPandas(partial(_requests, self.spec), "key string, messages string")
        )

    def call_options(self) -> dict[str, Any]:
        return {"response_schema": genericize_schema(self.spec), "schema_name": "template"}  # sampling: self.llm

    def checker(self) -> Callable[[Row], Row]:
        return _parse

    def decide(self, rows: DataFrame) -> DataFrame:
        candidates = rows.select(
            F.col("query_id").alias("source_key"), "query_id", F.col("text").alias("query"), "template",
            "description", "reason", "detail", "request_id", "model",
            F.lit(f"genericize:{self.spec.version_tag}").alias("origin"),
        )  # fmt: skip
        return check_templates(candidates, self.cfg)

    def write(self, decided: DataFrame) -> dict[str, int]:
        valid = decided.where(F.col("reason").isNull())
        stored = decided.where(F.col("reason").isNotNull() & ~F.col("transient"))
        rejects = stored.select(
            "source_key", "reason", "detail", "template", F.col("description").alias("compatible_doc_description"),
            "query", "origin", "request_id",
        )  # fmt: skip
        return {  # templates before their sources: a crash between them leaves the queries done (source_query_ids)
            TEMPLATES.name: self.ctx.store.write(merge_templates(valid), TEMPLATES),
            TEMPLATE_SOURCES.name: self.ctx.store.write(valid.select("query_id", "template_id"), TEMPLATE_SOURCES),
            TEMPLATE_REJECTS.name: self.ctx.store.write(rejects, TEMPLATE_REJECTS),
        }

    def finish(self, result: StageResult, decided: DataFrame) -> None:
        valid = decided.where(F.col("reason").isNull())
        result.metrics.update(slot_histogram(valid))
        result.metrics["templates_new"] = float(result.tables[TEMPLATES.name])
        result.metrics["templates_total"] = float(self.ctx.store.count(TEMPLATES))
        result.metrics["merged_queries"] = float(result.rows_out - valid.select("template_id").distinct().count())


def run(ctx: StageContext) -> StageResult:
    return Genericize(ctx).run()


def _requests(spec: PromptSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        messages = [encode(chat_messages(spec, {"query": q})) for q in batch["text"]]
        yield pd.DataFrame({"key": batch["query_id"], "messages": messages})


QUERY_GATE_DDL = "query_id string, text string, skip_reason string, skip_detail string"


def _gate(extractive: bool, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Queries that cannot make a usable template (fi_spark.text.instructions.query_problem) get a reason."""
    for batch in batches:
        problems = [query_problem(text, extractive=extractive) for text in batch["text"]]
        # "" (not null) for a usable query: a column of nulls alone does not keep its type through Parquet on Sail
        yield batch.assign(
            skip_reason=[p[0] if p else "" for p in problems], skip_detail=[p[1] if p else "" for p in problems]
        )


def _parse(row: Row) -> Row:
    """One answer -> template + description, or the reason it is unusable."""
    from fi_spark.genericize import parse_answer

    if row["skip_reason"]:  # refused before any call (`_gate`)
        return {"reason": f"query_{row['skip_reason']}", "detail": row["skip_detail"]}
    failed = llm_failure(row)
    if failed:
        return failed
    template, description, problem = parse_answer(row["parsed"] or row["content"], row["text"])  # released: text
    reason = None
    if problem:
        head = problem.split(":", 1)[0]
        reason = head if head in FROM_QUERY_REASONS else "llm_unusable_answer"
    return {"template": template, "description": description, "reason": reason, "detail": problem}
