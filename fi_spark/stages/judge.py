"""Stage `judge`: pairs -> judged (score, expected score, optional rationale per pair); the final set is a view.

Every pair not judged yet is sent to the judge LLM with the judge prompt (fi_spark.generate.judge)
and the same source text the instantiator saw, rebuilt from the pair's own (doc_id, chunk_id,
char_start, char_end) -- never re-derived from matches. By default the answer is one constrained score
token with its logprobs (`judge.logprobs`); `judge.rationale` asks for a rationale first (audits); a
prompt with `judge_style: yes_no` (judge.v3) asks a yes/no question, P(yes) mapped onto the scale; one with
`judge_style: likelihood` (judge.v4) sends two scoring requests per pair (the answer after the instruction,
and after a neutral request; fi_spark.generate.likelihood) and `send` pairs their answers up again. The
verdict is stored whole in `judged` -- score, expected score, rationale, or the reason no usable verdict
came back -- and the threshold is applied only when reading (`final_pairs`, fi_spark.stages.lineage),
so `judge.threshold` can change without a new request. Transient LLM failures are not stored.

Accounting (the loop is fi_spark.stages.llm_stage's): rows in = pairs judged now; rows out = those at or
above the threshold; rejected = below_threshold + unusable verdicts + transient failures (`llm_<reason>`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from fi_spark.config import PromptSpec, load_prompt
from fi_spark.generate import judge as gen
from fi_spark.generate import likelihood
from fi_spark.schemas import CHUNKS, DOCUMENTS, JUDGED, PAIRS
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.stages.llm_stage import LLM_TABLES, LLMStage, Row, encode, llm_failure
from fi_spark.stages.sources import attach_source_text

STAGE = "judge"
SOURCE_COLUMNS = ("pair_id", "doc_id", "chunk_id", "char_start", "char_end")
TABLES = StageTables(
    reads=(PAIRS, DOCUMENTS, CHUNKS),
    writes=(JUDGED, *LLM_TABLES),
    funnel=(
        FunnelStep("pairs", "judged", ("judged",), where="score IS NOT NULL"),
        FunnelStep("pairs", "score >= {cfg.judge.threshold:g}", ("judged",), where="score >= {cfg.judge.threshold}"),
    ),
)


class Judge(LLMStage):
    name, key, tables = STAGE, "pair_id", TABLES
    check_columns = ("answer",)
    checked = StructType(
        [StructField("pair_id", StringType()), StructField("score", IntegerType())]
        + [StructField(c, StringType()) for c in ("rationale", "error_reason", "detail")]
        + [StructField("expected_score", DoubleType())]
    )

    def setup(self) -> None:
        self.cfg = self.ctx.config.judge
        self.spec: PromptSpec = load_prompt(self.cfg.prompt)
        gen.check_prompt(self.spec)
        self.scale = (self.cfg.scale_min, self.cfg.scale_max)

    def pending(self) -> DataFrame:
        """Pairs without a stored verdict, with the source text of their stored span."""
        pairs = self.ctx.store.read(PAIRS)  # pairs written before they kept a span lack char_start/char_end
        pairs = pairs.select(*[c for c in (*SOURCE_COLUMNS, "instruction", "answer") if c in pairs.columns])
        return attach_source_text(self.ctx, pairs.join(self.ctx.store.read(JUDGED), "pair_id", "left_anti"))

    def requests(self, pending: DataFrame) -> DataFrame:
        rows = pending.select("pair_id", "instruction", "answer", "source_text")
        if self.spec.judge_style == "likelihood":
            return rows.mapInPandas(partial(_scoring_requests, self.spec), "key string, messages string")
        return rows.mapInPandas(partial(_requests, self.spec, self.scale, self.cfg.max_source_chars,
                                        self.cfg.rationale), "key string, messages string")  # fmt: skip

    def send(self, requests: DataFrame) -> DataFrame | None:
        """One `complete`; for the likelihood judge, the two scoring answers of each pair become one row."""
        results = self.complete(requests, **self.call_options())
        return _pair_up(results) if self.spec.judge_style == "likelihood" else results

    def call_options(self) -> dict[str, Any]:
        if self.spec.judge_style == "likelihood":  # nothing is generated: one token, the prompt is what counts
            return {"max_tokens": 1, "temperature": 0.0, "score_final_message": True}
        schema, max_tokens = gen.request_shape(self.spec, self.scale, self.cfg.rationale,
                                               self.cfg.max_rationale_chars, self.cfg.max_tokens)  # fmt: skip
        return {"response_schema": schema, "schema_name": "verdict", "max_tokens": max_tokens,
                "temperature": self.cfg.temperature, "top_logprobs": self.cfg.logprobs}  # fmt: skip

    def checker(self) -> Callable[[Row], Row]:
        return partial(_verdict, self.spec, self.scale, self.cfg.max_rationale_chars)

    def decide(self, rows: DataFrame) -> DataFrame:
        outcome = (
            F.when(F.col("score") >= F.lit(self.cfg.threshold), F.lit(None))
            .when(F.col("score").isNotNull(), F.lit("below_threshold"))
            .otherwise(F.col("error_reason"))
        )
        return rows.select(
            "pair_id", "score", "rationale", "error_reason", "detail", "expected_score",
            F.lit(self.scale[0]).alias("scale_min"), F.lit(self.scale[1]).alias("scale_max"),
            F.coalesce("model", F.lit(self.ctx.config.llm.model or "unknown")).alias("model"),
            F.lit(self.spec.version_tag).alias("prompt_version"), "request_id", outcome.alias("reason"),
        )  # fmt: skip

    def write(self, decided: DataFrame) -> dict[str, int]:
        """Every verdict is stored (the threshold is a view); only transient failures are left for next run."""
        return {JUDGED.name: self.ctx.store.write(decided.where(~F.col("transient")), JUDGED)}


def run(ctx: StageContext) -> StageResult:
    return Judge(ctx).run()


def _requests(
    spec: PromptSpec, scale: tuple[int, int], max_chars: int, rationale: bool, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    for batch in batches:
        rows = zip(batch["instruction"], batch["answer"], batch["source_text"], strict=True)
        messages = [
            encode(gen.judge_messages(spec, i, a, text or "", scale, max_chars, rationale)) for i, a, text in rows
        ]
        yield pd.DataFrame({"key": batch["pair_id"], "messages": messages})


def _scoring_requests(spec: PromptSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Two rows per pair, keyed `<pair_id>|cond` and `<pair_id>|free`: the answer after the instruction, and
    after the prompt's neutral request (the same for every pair with this answer: sent once)."""
    for batch in batches:
        keys, messages = [], []
        for pair_id, instruction, answer in zip(batch["pair_id"], batch["instruction"], batch["answer"], strict=True):
            request = spec.user.format(instruction=instruction)
            for role, text in zip(likelihood.ROLES, (request, spec.neutral), strict=True):
                keys.append(f"{pair_id}|{role}")
                messages.append(encode(likelihood.scoring_messages(text, answer or "", spec.system)))
        yield pd.DataFrame({"key": keys, "messages": messages})


def _pair_up(results: DataFrame) -> DataFrame:
    """Scoring results (one row per key `<pair_id>|<role>`) -> one row per pair: `logprobs` is the JSON object
    {"cond": ..., "free": ...} of both answers' logprobs; the first failure, if any, is the pair's."""
    cond, free = (
        results.where(F.col("key").endswith(f"|{role}")).select(
            F.expr(f"substring(key, 1, length(key) - {len(role) + 1})").alias("key"),
            *[F.col(c).alias(f"{role}_{c}") for c in ("request_id", "logprobs", "error_reason", "error")],
        )
        for role in likelihood.ROLES
    )
    both = cond.join(free, "key", "full")
    return both.select(
        "key", F.coalesce("cond_request_id", "free_request_id").alias("request_id"),
        F.lit(None).cast("string").alias("parsed"), F.lit(None).cast("string").alias("content"),
        F.to_json(F.struct(*[F.col(f"{r}_logprobs").alias(r) for r in likelihood.ROLES])).alias("logprobs"),
        F.coalesce("cond_error_reason", "free_error_reason").alias("error_reason"),
        F.coalesce("cond_error", "free_error").alias("error"),
    )  # fmt: skip


def _verdict(spec: PromptSpec, scale: tuple[int, int], max_chars: int, row: Row) -> Row:
    """One answer (schema-valid JSON, else the raw content) and its logprobs -> the verdict, or why none came."""
    failed = llm_failure(row, "error_reason")
    if failed:
        return failed
    if spec.judge_style == "likelihood":
        both = json.loads(row.get("logprobs") or "{}")
        verdict = likelihood.lift_verdict(both.get("cond"), both.get("free"), row.get("answer") or "",
                                          spec.lift_edges, scale)  # fmt: skip
    else:
        verdict = gen.judge_verdict(spec, row["parsed"] or row["content"], row.get("logprobs"), scale, max_chars)
    return {"score": verdict.score, "rationale": verdict.rationale, "error_reason": verdict.reason,
            "detail": verdict.detail, "expected_score": verdict.expected_score}  # fmt: skip
