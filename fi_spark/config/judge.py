"""Settings of the judge stage (fi_spark.judge)."""

from __future__ import annotations

from pydantic import Field, model_validator

from fi_spark.config.llm import StageLLMConfig
from fi_spark.section import Section


class JudgeConfig(Section):
    """judge: a score per pair, kept in `judged` -- what the prompt's style makes it: a rubric or yes/no score token
    (judge.v1-v3) or the answer's likelihood lift from its instruction (judge.v4, the local profile's); the final
    view keeps score >= threshold. With logprobs the expected score is stored too (fi_spark.judge.rubric)."""

    prompt: str = Field(default="judge.v2", description="prompt under conf/prompts/ or a YAML path (judge.v1: "
                        "the earlier rubric, rationale only)")  # fmt: skip
    rationale: bool = Field(
        default=False, description="ask for a short rationale before the score (audits); off: the score token alone"
    )
    logprobs: int = Field(
        default=5, ge=0, le=20, description="alternatives returned for the score token (expected_score); 0 = none"
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="with a rationale: override of llm.max_tokens (the score alone needs 4)"
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    llm: StageLLMConfig = Field(
        default_factory=StageLLMConfig, description="judge's own llm keys (endpoints, model, ...); the rest: llm.*"
    )
    scale_min: int = Field(default=1, description="lowest rubric score")
    scale_max: int = Field(default=5, description="highest rubric score")
    threshold: float = Field(
        default=4.0, description="pairs scoring below this are left out of the final view (paper: >= 4 of 5)"
    )
    max_source_chars: int = Field(default=3000, ge=100)
    max_rationale_chars: int = Field(default=600, ge=20, description="rationale cap, in the response schema too")

    @model_validator(mode="after")
    def _scale(self) -> JudgeConfig:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"judge.scale_min ({self.scale_min}) must be below judge.scale_max ({self.scale_max})")
        if not self.scale_min <= self.threshold <= self.scale_max:
            raise ValueError(
                f"judge.threshold ({self.threshold}) must lie within the scale [{self.scale_min}, {self.scale_max}]"
            )
        return self
