"""Stage `judge`: pairs -> judged (score, expected score, optional rationale per pair); the final set is a view.

Every pair not judged yet is sent to the judge LLM with the judge prompt (fi_spark.judge.rubric)
and the same source text the instantiator saw, rebuilt from the pair's own (doc_id, chunk_id,
char_start, char_end) -- never re-derived from matches. By default the answer is one constrained score
token with its logprobs (`judge.logprobs`); `judge.rationale` asks for a rationale first (audits); a
prompt with `judge_style: yes_no` (judge.v3) asks a yes/no question, P(yes) mapped onto the scale; one with
`judge_style: likelihood` (judge.v4) sends two scoring requests per pair (the answer after the instruction,
and after a neutral request) and `send` pairs their answers up again (fi_spark.judge.styles). The
verdict is stored whole in `judged` -- score, expected score, rationale, or the reason no usable verdict
came back -- and the threshold is applied only when reading (`final_pairs`, fi_spark.export.lineage),
so `judge.threshold` can change without a new request. Transient LLM failures are not stored.

Accounting (the loop is fi_spark.stages.llm_stage's): rows in = pairs judged now; rows out = those at or
above the threshold; rejected = below_threshold + unusable verdicts + transient failures (`llm_<reason>`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from fi_spark.judge import rubric as gen
from fi_spark.judge.styles import pair_up, rubric_requests, scoring_requests, verdict
from fi_spark.prompting.spec import PromptSpec, load_prompt
from fi_spark.schemas import CHUNKS, DOCUMENTS, JUDGED, PAIRS
from fi_spark.section import ConfigError
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.stages.llm_stage import LLM_TABLES, LLMStage, Row
from fi_spark.stages.sources import attach_source_text, source_chars

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
        if self.spec.prompt_format == "flow-judge" and self.scale != (1, 5):
            raise ConfigError(
                f"judge.prompt {self.cfg.prompt} is Flow Judge's 1-5 Likert rubric: set judge.scale_min=1 and "
                f"judge.scale_max=5 (got {self.scale[0]}-{self.scale[1]})"
            )

    def pending(self) -> DataFrame:
        """Pairs without a stored verdict, with the source text of their stored span."""
        pairs = self.ctx.store.read(PAIRS)  # pairs written before they kept a span lack char_start/char_end
        pairs = pairs.select(*[c for c in (*SOURCE_COLUMNS, "instruction", "answer") if c in pairs.columns])
        pending = pairs.join(self.ctx.store.read(JUDGED), "pair_id", "left_anti")
        return attach_source_text(self.ctx, pending, source_chars(self.ctx))

    def requests(self, pending: DataFrame) -> DataFrame:
        rows = pending.select("pair_id", "instruction", "answer", "source_text")
        if self.spec.judge_style == "likelihood":
            return rows.mapInPandas(partial(scoring_requests, self.spec), "key string, messages string")
        return rows.mapInPandas(partial(rubric_requests, self.spec, self.scale, self.cfg.max_source_chars,
                                        self.cfg.rationale), "key string, messages string")  # fmt: skip

    def send(self, requests: DataFrame) -> DataFrame | None:
        """One `complete`; for the likelihood judge, the two scoring answers of each pair become one row."""
        results = self.complete(requests, **self.call_options())
        return pair_up(results) if self.spec.judge_style == "likelihood" else results

    def call_options(self) -> dict[str, Any]:
        if self.spec.judge_style == "likelihood":  # nothing is generated: one token, the prompt is what counts
            return {"max_tokens": 1, "temperature": 0.0, "score_final_message": True}
        schema, max_tokens = gen.request_shape(self.spec, self.scale, self.cfg.rationale,
                                               self.cfg.max_rationale_chars, self.llm.max_tokens)  # fmt: skip
        # temperature and the rest of the sampling: self.llm, the stage's own (Config.stage_llm)
        return {"response_schema": schema, "schema_name": "verdict", "max_tokens": max_tokens,
                "top_logprobs": self.cfg.logprobs}  # fmt: skip

    def checker(self) -> Callable[[Row], Row]:
        return partial(verdict, self.spec, self.scale, self.cfg.max_rationale_chars)

    def decide(self, rows: DataFrame) -> DataFrame:
        outcome = (
            F.when(F.col("score") >= F.lit(self.cfg.threshold), F.lit(None))
            .when(F.col("score").isNotNull(), F.lit("below_threshold"))
            .otherwise(F.col("error_reason"))
        )
        return rows.select(
            "pair_id", "score", "rationale", "error_reason", "detail", "expected_score",
            F.lit(self.scale[0]).alias("scale_min"), F.lit(self.scale[1]).alias("scale_max"),
            F.coalesce("model", F.lit(self.llm.model or "unknown")).alias("model"),
            F.lit(self.spec.version_tag).alias("prompt_version"), "request_id", outcome.alias("reason"),
        )  # fmt: skip

    def write(self, decided: DataFrame) -> dict[str, int]:
        """Every verdict is stored (the threshold is a view); only transient failures are left for next run."""
        return {JUDGED.name: self.ctx.store.write(decided.where(~F.col("transient")), JUDGED)}


def run(ctx: StageContext) -> StageResult:
    return Judge(ctx).run()
