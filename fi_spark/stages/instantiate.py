"""Stage `instantiate`: matches + documents + templates -> pairs, pair_rejects.

For every match not decided yet, the LLM fills the template's slots from the matched text and writes
an answer (structured output: fi_spark.generate.instantiate.Instantiation). Each answer is then checked
(unfilled `<fi>` tags, empty or short answers, grounding below `instantiate.min_grounding`, and with
`decontam.eval_paths` set, a long n-gram shared with an evaluation set) and lands in exactly one of:

- `pairs`: passed every check, with grounding, slot values, match score, model and prompt version;
- `pair_rejects`: one machine-readable reason and a detail carrying the measured value;
- nowhere, for this run only: transient LLM failures (retries exhausted, budget, endpoints down). They
  are counted in the result as `llm_<reason>` and sent again by the next run, which is why they are
  not written: a stored reject would stop the retry.

Re-running skips pairs already in either table, and the LLM ledger answers repeated requests, so a
re-run makes no HTTP calls and adds no rows.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from fi_spark.config import InstantiateConfig, PromptSpec, load_prompt
from fi_spark.generate import instantiate as gen
from fi_spark.generate.decontam import EvalNgramIndex
from fi_spark.llm.types import TRANSIENT_REASONS
from fi_spark.schemas import LLM_RESPONSES, PAIR_REJECTS, PAIRS, SLOT_VALUES
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.stages.decontam import load_eval_index
from fi_spark.stages.sources import attach_source_text, candidate_pairs, named_table
from fi_spark.templates.tags import parse_template

STAGE = "instantiate"
NOT_STORED = (*TRANSIENT_REASONS, "no_result")  # LLM outcomes the next run retries
REQUEST_SCHEMA = StructType(
    [StructField("key", StringType()), StructField("messages", StringType()), StructField("n_slots", IntegerType())]
)
EVALUATED_SCHEMA = StructType(
    [
        StructField("pair_id", StringType()),
        StructField("instruction", StringType()),
        StructField("answer", StringType()),
        StructField("slot_values", SLOT_VALUES),
        StructField("grounding", DoubleType()),
        StructField("answer_tokens", IntegerType()),
        StructField("longest_excerpt", IntegerType()),
        StructField("excerpt_share", DoubleType()),
        StructField("reason", StringType()),
        StructField("detail", StringType()),
    ]
)


def run(ctx: StageContext) -> StageResult:
    started = time.time()
    cfg = ctx.config.instantiate
    spec = load_prompt(cfg.prompt)
    gen.check_prompt(spec)
    matches = named_table(ctx, "matches")
    if matches is None:
        raise ValueError("instantiate needs the `matches` table: run the match stage first")
    templates = named_table(ctx, "templates")
    if templates is None or not {"template_id", "template"} <= set(templates.columns):
        raise ValueError("instantiate needs the `templates` table (template_id, template): run genericize first")

    pending = read_pending(ctx, matches, templates)
    if cfg.sample_pairs:  # a fixed sample of all candidate pairs, so a re-run has nothing new to send
        sample = candidate_pairs(matches).select("pair_id").orderBy(F.sha2("pair_id", 256)).limit(cfg.sample_pairs)
        pending = ctx.store.materialize(pending.join(sample, "pair_id", "left_semi"), "instantiate_pending")
    rows_in = pending.count()
    if rows_in == 0:
        ctx.log.info("instantiate: every match already has a pair or a reject")
        return StageResult(STAGE, 0, 0, seconds=time.time() - started)

    requests = pending.where(F.col("source_text").isNotNull()).select("pair_id", "template", "source_text")
    requests = requests.mapInPandas(partial(_build_requests, spec, cfg.max_source_chars), REQUEST_SCHEMA)
    results, llm_metrics = send(ctx, requests, cfg, spec)
    evaluated = evaluate(ctx, pending, results, spec, cfg, load_eval_index(ctx))
    evaluated = ctx.store.materialize(evaluated, "instantiate_evaluated")  # read by two writes and the counts

    added_pairs = ctx.store.write(evaluated.where(F.col("reason").isNull()), PAIRS)
    stored_rejects = evaluated.where(F.col("reason").isNotNull() & ~F.col("transient"))
    added_rejects = ctx.store.write(stored_rejects, PAIR_REJECTS)
    counts = {r["reason"]: int(r["count"]) for r in evaluated.groupBy("reason").count().collect()}
    rows_out = counts.pop(None, 0)
    result = StageResult(
        STAGE,
        rows_in=rows_in,
        rows_out=rows_out,
        rejected=counts,
        metrics=llm_metrics,
        tables={PAIRS.name: added_pairs, PAIR_REJECTS.name: added_rejects},
        seconds=time.time() - started,
    )
    result.check_accounting()
    return result


def read_pending(ctx: StageContext, matches: DataFrame, templates: DataFrame) -> DataFrame:
    """Candidate pairs with no pair and no stored reject yet, with template text and source text."""
    decided = ctx.store.read(PAIRS).select("pair_id").unionByName(ctx.store.read(PAIR_REJECTS).select("pair_id"))
    pending = candidate_pairs(matches).join(decided, "pair_id", "left_anti")
    pending = pending.join(templates.select("template_id", "template"), "template_id", "left")
    return attach_source_text(ctx, pending)


def _build_requests(spec: PromptSpec, max_chars: int, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        messages = [
            json.dumps(gen.build_messages(spec, template or "", text, max_chars), ensure_ascii=False)
            for template, text in zip(batch["template"], batch["source_text"], strict=True)
        ]
        slots = [len(parse_template(t).slots) for t in batch["template"]]
        yield pd.DataFrame({"key": batch["pair_id"], "messages": messages, "n_slots": slots})


def send(
    ctx: StageContext, requests: DataFrame, cfg: InstantiateConfig, spec: PromptSpec
) -> tuple[DataFrame, dict[str, float]]:
    """One `complete` call per slot count, each with a schema asking for exactly that many slot values.

    The distinct slot counts are a handful (templates.max_slots bounds them), so this is a few Spark jobs,
    not one per template. Metrics: counts are summed over the calls, latency and rate figures take the max.
    """
    from fi_spark.llm import complete

    counts = sorted(r["n_slots"] for r in requests.select("n_slots").distinct().collect())
    results: DataFrame | None = None
    metrics: dict[str, float] = {}
    for n in counts:
        run = complete(
            ctx, requests.where(F.col("n_slots") == n).select("key", "messages"), stage=STAGE,
            response_schema=gen.response_schema(n, cfg.max_instruction_chars, cfg.max_answer_chars, spec=spec),
            schema_name="instantiation",
            max_tokens=cfg.max_tokens, temperature=cfg.temperature,
        )  # fmt: skip
        results = run.results if results is None else results.unionByName(run.results)
        for key, value in run.metrics.items():
            name = f"llm.{key}"
            peak = key.startswith("latency") or key.endswith("_per_s")
            metrics[name] = max(metrics.get(name, value), value) if peak else metrics.get(name, 0.0) + value
    if results is None:  # nothing had a source text: an empty result frame with the columns evaluate reads
        results = ctx.spark.createDataFrame(
            [], "key string, request_id string, content string, parsed string, error_reason string, error string"
        )
    return results, metrics


def evaluate(
    ctx: StageContext,
    pending: DataFrame,
    results: DataFrame,
    spec: PromptSpec,
    cfg: InstantiateConfig,
    eval_index: EvalNgramIndex | None,
) -> DataFrame:
    """Pending pairs + LLM results -> every PAIRS / PAIR_REJECTS column, `reason` (null = pair) and `transient`."""
    answers = results.select(  # parsed JSON for our formats, the raw content for the released one (no schema)
        F.col("key").alias("pair_id"), "request_id", F.coalesce("parsed", "content").alias("parsed"),
        F.col("error_reason").alias("llm_reason"), "error",
    )  # fmt: skip
    models = ctx.store.read(LLM_RESPONSES).select("request_id", "model")
    rows = pending.join(answers, "pair_id", "left").join(models, "request_id", "left")
    checks = rows.select("pair_id", "parsed", "source_text", "llm_reason", "error").mapInPandas(
        partial(_check_partition, gen.InstantiateRules.from_config(cfg, spec), eval_index, ctx.config.decontam.check),
        EVALUATED_SCHEMA,
    )
    return rows.drop("parsed", "error").join(checks, "pair_id").select(
        "pair_id", "doc_id", "chunk_id", "template_id", "instruction", "answer", "slot_values", "grounding",
        "answer_tokens", "longest_excerpt", "excerpt_share", "match_score", "match_rank",
        F.coalesce("model", F.lit(ctx.config.llm.model or "unknown")).alias("model"),
        F.lit(spec.version_tag).alias("prompt_version"), "request_id", "reason", "detail",
        F.coalesce(F.col("llm_reason").isin(*NOT_STORED), F.lit(False)).alias("transient"),
    )  # fmt: skip


def _check_partition(
    rules: gen.InstantiateRules,
    eval_index: EvalNgramIndex | None,
    fields: tuple[str, ...],
    batches: Iterator[pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    for batch in batches:
        out = []
        for row in batch.itertuples(index=False):
            if _absent(row.source_text):
                out.append(_reject(row.pair_id, "missing_source", "the document or chunk is no longer in the tables"))
                continue
            if not _absent(row.llm_reason):
                out.append(_reject(row.pair_id, f"llm_{row.llm_reason}", row.error))
                continue
            check = gen.evaluate_instantiation(row.parsed, row.source_text, rules)
            if check.reason is None and eval_index is not None:
                for name in fields:
                    overlap = eval_index.find(getattr(check, name) or "")
                    if overlap is not None:
                        check.reason = "contaminated"
                        check.detail = f"{name} shares {eval_index.n}-gram '{overlap.ngram}' with {overlap.source}"
                        break
            out.append(
                {
                    "pair_id": row.pair_id, "instruction": check.instruction, "answer": check.answer,
                    "slot_values": check.slot_values, "grounding": check.grounding,
                    "answer_tokens": check.answer_tokens, "longest_excerpt": check.longest_excerpt,
                    "excerpt_share": check.excerpt_share,
                    "reason": check.reason, "detail": check.detail,
                }
            )  # fmt: skip
        frame = pd.DataFrame(out, columns=[f.name for f in EVALUATED_SCHEMA.fields])
        for column in ("answer_tokens", "longest_excerpt"):  # nullable ints: NaN would not cast to int
            frame[column] = frame[column].astype("Int32")
        yield frame


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))  # NaN: from an all-null column


def _reject(pair_id: str, reason: str, detail: str | None) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(f.name for f in EVALUATED_SCHEMA.fields)  # every column, None
    row.update(pair_id=pair_id, reason=reason, detail=detail)
    return row
