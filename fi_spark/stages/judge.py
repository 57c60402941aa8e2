"""Stage `judge`: pairs -> judged (score + rationale per pair); the final set is a view over it.

Every pair not judged yet is sent to the judge LLM with the rubric prompt (fi_spark.generate.judge)
and the same source text the instantiator saw. The verdict is stored whole in `judged` -- score,
rationale, or the reason no usable verdict came back -- and the threshold is applied only when
reading (`final_pairs`, fi_spark.stages.lineage), so `judge.threshold` can change without a single
new request. Transient LLM failures are not stored, so the next run asks again.

Result accounting: rows in = pairs judged now; rows out = those at or above the threshold; rejected =
below_threshold + unusable verdicts + transient failures (`llm_<reason>`).
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
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from fi_spark.config import PromptSpec, load_prompt
from fi_spark.generate import judge as gen
from fi_spark.llm.types import TRANSIENT_REASONS
from fi_spark.schemas import JUDGED, LLM_RESPONSES, PAIRS
from fi_spark.stages.base import StageContext, StageResult
from fi_spark.stages.sources import attach_source_text, candidate_pairs, named_table

STAGE = "judge"
NOT_STORED = (*TRANSIENT_REASONS, "no_result")
REQUEST_SCHEMA = StructType([StructField("key", StringType()), StructField("messages", StringType())])
VERDICT_SCHEMA = StructType(
    [
        StructField("pair_id", StringType()),
        StructField("score", IntegerType()),
        StructField("rationale", StringType()),
        StructField("error_reason", StringType()),
        StructField("detail", StringType()),
    ]
)


def run(ctx: StageContext) -> StageResult:
    started = time.time()
    cfg = ctx.config.judge
    spec = load_prompt(cfg.prompt)
    gen.check_prompt(spec)
    scale = (cfg.scale_min, cfg.scale_max)

    pending = read_pending(ctx)
    rows_in = pending.count()
    if rows_in == 0:
        ctx.log.info("judge: every pair already has a verdict")
        return StageResult(STAGE, 0, 0, seconds=time.time() - started)

    requests = pending.select("pair_id", "instruction", "answer", "source_text").mapInPandas(
        partial(_build_requests, spec, scale, cfg.max_source_chars), REQUEST_SCHEMA
    )
    from fi_spark.llm import complete

    llm = complete(
        ctx, requests, stage=STAGE, schema_name="verdict",
        response_schema=gen.verdict_schema(*scale, cfg.max_rationale_chars),
        max_tokens=cfg.max_tokens, temperature=cfg.temperature,
    )  # fmt: skip
    verdicts = ctx.store.materialize(parse_verdicts(ctx, llm.results, spec), "judge_verdicts")
    added = ctx.store.write(verdicts.where(~F.col("transient")), JUDGED)

    outcome = (
        F.when(F.col("score") >= F.lit(cfg.threshold), F.lit(None))
        .when(F.col("score").isNotNull(), F.lit("below_threshold"))
        .otherwise(F.col("error_reason"))
    )
    counts = {r["o"]: int(r["count"]) for r in verdicts.groupBy(outcome.alias("o")).count().collect()}
    result = StageResult(
        STAGE,
        rows_in=rows_in,
        rows_out=counts.pop(None, 0),
        rejected=counts,
        metrics={f"llm.{k}": v for k, v in llm.metrics.items()},
        tables={JUDGED.name: added},
        seconds=time.time() - started,
    )
    result.check_accounting()
    return result


def read_pending(ctx: StageContext) -> DataFrame:
    """Pairs without a stored verdict, with the source text they were made from."""
    pairs = ctx.store.read(PAIRS)
    pending = pairs.join(ctx.store.read(JUDGED).select("pair_id"), "pair_id", "left_anti")
    matches = named_table(ctx, "matches")
    if matches is not None:  # the same span the instantiator saw, when matches carry one
        spans = candidate_pairs(matches).select("pair_id", "char_start", "char_end")
        pending = pending.join(spans, "pair_id", "left")
    return attach_source_text(ctx, pending)


def _build_requests(
    spec: PromptSpec, scale: tuple[int, int], max_chars: int, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    for batch in batches:
        messages = [
            json.dumps(gen.build_messages(spec, instr, answer, text or "", scale, max_chars), ensure_ascii=False)
            for instr, answer, text in zip(batch["instruction"], batch["answer"], batch["source_text"], strict=True)
        ]
        yield pd.DataFrame({"key": batch["pair_id"], "messages": messages})


def parse_verdicts(ctx: StageContext, results: DataFrame, spec: PromptSpec) -> DataFrame:
    """LLM results -> every JUDGED column plus `transient` (failures the next run retries)."""
    cfg = ctx.config.judge
    scale = (cfg.scale_min, cfg.scale_max)
    answers = results.select(
        F.col("key").alias("pair_id"), "request_id", "parsed", F.col("error_reason").alias("llm_reason"), "error"
    )
    parsed = answers.select("pair_id", "parsed", "llm_reason", "error").mapInPandas(
        partial(_parse_partition, scale, cfg.max_rationale_chars), VERDICT_SCHEMA
    )
    models = ctx.store.read(LLM_RESPONSES).select("request_id", "model")
    return (
        answers.select("pair_id", "request_id", "llm_reason")
        .join(parsed, "pair_id")
        .join(models, "request_id", "left")
        .select(
            "pair_id", "score", "rationale", "error_reason", "detail",
            F.lit(scale[0]).alias("scale_min"), F.lit(scale[1]).alias("scale_max"),
            F.coalesce("model", F.lit(ctx.config.llm.model or "unknown")).alias("model"),
            F.lit(spec.version_tag).alias("prompt_version"), "request_id",
            F.coalesce(F.col("llm_reason").isin(*NOT_STORED), F.lit(False)).alias("transient"),
        )
    )  # fmt: skip


def _parse_partition(scale: tuple[int, int], max_chars: int, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        out = []
        for row in batch.itertuples(index=False):
            if not _absent(row.llm_reason):
                out.append({"pair_id": row.pair_id, "error_reason": f"llm_{row.llm_reason}", "detail": row.error})
                continue
            verdict = gen.parse_verdict(None if _absent(row.parsed) else row.parsed, scale, max_chars)
            out.append(
                {
                    "pair_id": row.pair_id, "score": verdict.score, "rationale": verdict.rationale,
                    "error_reason": verdict.reason, "detail": verdict.detail,
                }
            )  # fmt: skip
        frame = pd.DataFrame(out, columns=[f.name for f in VERDICT_SCHEMA.fields])
        frame["score"] = frame["score"].astype("Int32")
        yield frame


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
