"""What the judge stage sends and how it reads an answer, per judge style of the prompt.

A rubric or yes/no prompt (judge.v1-v3) is one request per pair, keyed by `pair_id`, whose answer is a
constrained score token (or a rationale then the score) with its logprobs (fi_spark.judge.rubric). A
`likelihood` prompt (judge.v4) is two scoring requests per pair, keyed `<pair_id>|cond` (the answer after
the instruction) and `<pair_id>|free` (after the prompt's neutral request); `pair_up` joins their answers
back into one row per pair, so the stage's check and write are the same for every style.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark.judge import likelihood
from fi_spark.judge import rubric as gen
from fi_spark.prompting.spec import PromptSpec
from fi_spark.stages.llm_stage import Row, encode, llm_failure


def rubric_requests(
    spec: PromptSpec, scale: tuple[int, int], max_chars: int, rationale: bool, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    for batch in batches:
        rows = zip(batch["instruction"], batch["answer"], batch["source_text"], strict=True)
        messages = [
            encode(gen.judge_messages(spec, i, a, text or "", scale, max_chars, rationale)) for i, a, text in rows
        ]
        yield pd.DataFrame({"key": batch["pair_id"], "messages": messages})


def scoring_requests(spec: PromptSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
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


def pair_up(results: DataFrame) -> DataFrame:
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


def verdict(spec: PromptSpec, scale: tuple[int, int], max_chars: int, row: Row) -> Row:
    """One answer (schema-valid JSON, else the raw content) and its logprobs -> the verdict, or why none came."""
    failed = llm_failure(row, "error_reason")
    if failed:
        return failed
    if spec.judge_style == "likelihood":
        both = json.loads(row.get("logprobs") or "{}")
        found = likelihood.lift_verdict(both.get("cond"), both.get("free"), row.get("answer") or "",
                                        spec.lift_edges, scale)  # fmt: skip
    else:
        found = gen.judge_verdict(spec, row["parsed"] or row["content"], row.get("logprobs"), scale, max_chars)
    return {"score": found.score, "rationale": found.rationale, "error_reason": found.reason,
            "detail": found.detail, "expected_score": found.expected_score}  # fmt: skip
