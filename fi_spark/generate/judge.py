"""The pair judge: a rubric prompt on a configurable integer scale, and parsing of its score and rationale.

Consumes an instruction, an answer and the source text they came from; the model answers
``{"rationale": str, "score": int}``. The rationale comes first in the schema so the model reasons
before it commits to a number. The score's bounds are part of the JSON schema, so a server with
structured output cannot answer outside the scale; `parse_verdict` checks again for servers without it.

Verdicts are stored whole (score and rationale) in the `judged` table; the threshold is applied only
by the final view, so changing `judge.threshold` never sends a request again. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fi_spark.generate.prompting import chat_messages, check_placeholders, cut_text, loads_object
from fi_spark.prompt_spec import PromptSpec

PLACEHOLDERS = {"scale_min", "scale_max", "scale_mid", "document", "instruction", "answer"}
REJECT_REASONS = ("judge_unparseable", "judge_score_out_of_range")


def verdict_schema(scale_min: int, scale_max: int, max_rationale_chars: int = 600) -> dict[str, Any]:
    """JSON schema of the judge's answer, with the score bounded to the configured scale."""
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "maxLength": max_rationale_chars},  # closes the JSON in time
            "score": {"type": "integer", "minimum": scale_min, "maximum": scale_max},
        },
        "required": ["rationale", "score"],
        "additionalProperties": False,
    }


def check_prompt(spec: PromptSpec) -> None:
    """Fail early when the prompt file uses placeholders this module does not fill."""
    check_placeholders(spec, PLACEHOLDERS)


def rescale(score: float, from_range: tuple[int, int], to_range: tuple[int, int]) -> int:
    """A score moved linearly from one integer scale to another, rounded (for few-shot examples)."""
    (a, b), (c, d) = from_range, to_range
    return round(c + (score - a) * (d - c) / (b - a))


def build_messages(
    spec: PromptSpec,
    instruction: str,
    answer: str,
    source_text: str,
    scale: tuple[int, int],
    max_source_chars: int,
) -> list[dict[str, str]]:
    """Chat messages asking for a verdict on one pair; examples are rescaled to `scale` when written for another."""
    low, high = scale

    def example(values: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        written_for = (int(values.get("scale_min", low)), int(values.get("scale_max", high)))
        values.update(scale_min=low, scale_max=high, scale_mid=(low + high) // 2)
        if written_for != scale and "score" in output:
            output = {**output, "score": rescale(float(output["score"]), written_for, scale)}
        return values, output

    values = {
        "scale_min": low,
        "scale_max": high,
        "scale_mid": (low + high) // 2,
        "document": cut_text(source_text, max_source_chars),
        "instruction": instruction,
        "answer": answer,
    }
    return chat_messages(spec, values, example)


@dataclass(frozen=True)
class JudgeVerdict:
    """A judged pair's score and rationale, or the reason no usable verdict came back."""

    score: int | None
    rationale: str | None
    reason: str | None = None
    detail: str | None = None


def parse_verdict(parsed: str | None, scale: tuple[int, int], max_rationale_chars: int = 600) -> JudgeVerdict:
    """Score and rationale from the judge's JSON; out-of-scale or missing scores become a reason."""
    obj = loads_object(parsed)
    score = obj.get("score") if obj else None
    if obj is None or isinstance(score, bool) or not isinstance(score, (int, float)):
        return JudgeVerdict(None, None, "judge_unparseable", f"expected {{rationale, score}}: {parsed!r:.200}")
    rationale = str(obj.get("rationale") or "").strip()[:max_rationale_chars]
    if score != int(score) or not scale[0] <= score <= scale[1]:
        return JudgeVerdict(
            None, rationale, "judge_score_out_of_range", f"score {score} outside [{scale[0]}, {scale[1]}]"
        )
    return JudgeVerdict(int(score), rationale)
