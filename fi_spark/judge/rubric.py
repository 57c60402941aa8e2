"""The pair judge: a rubric prompt on an integer scale, one constrained score token, and its parsing.

Consumes an instruction, an answer and the source text they came from. By default the judge answers
with the score alone: the response schema is a root integer enum (`score_schema`), which the LLM
adapter sends to vLLM as a choice, so the whole answer is one token such as `4`, and logprobs are
asked for that token. With `rationale` (for audits) the answer is the older ``{"rationale": str,
"score": int}`` object, rationale first so the model reasons before it commits to a number.

`expected_score` turns the score token's top logprobs into the expected score: the sum of score x
probability over the alternatives that are score tokens, renormalized over those present. It lets
users rank pairs and re-threshold finely. The logprobs arrive as the LLM layer's per-token list
(`[[token, {alternative: logprob}], ...]`, fi_spark.llm.adapter) or as one position's
``{alternative: logprob}`` map; in a list the score position is found by the tokens' text (the digit
after the last `"score":` in JSON, else the first digit), so it need not be the first token.

Verdicts are stored whole in the `judged` table; the threshold is applied only by the final view,
so changing `judge.threshold` never sends a request again. Pure Python.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from fi_spark.judge import flow_judge
from fi_spark.prompting.messages import chat_messages, check_placeholders, cut_text
from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError

PLACEHOLDERS = {"scale_min", "scale_max", "scale_mid", "document", "instruction", "answer", "reply_format"}
REJECT_REASONS = ("judge_unparseable", "judge_score_out_of_range")
SCORE_MAX_TOKENS = 4  # the one-token verdict: the score, plus room for a server that adds whitespace
REPLY_SCORE = "Reply with the score only: one integer from {low} to {high}, nothing else."
REPLY_RATIONALE = (
    'Reply with JSON only: {{"rationale": "<one to three sentences>", "score": <integer from {low} to {high}>}}, '
    "the rationale first."
)
_SCORE_KEY = re.compile(r'"score"\s*:\s*|<score>\s*')  # JSON's score key, or Flow Judge's tag
_DIGIT = re.compile(r"\d")


def score_schema(scale_min: int, scale_max: int) -> dict[str, Any]:
    """Schema of the one-token verdict: a bare integer, one of the scale's values (a choice for vLLM)."""
    return {"type": "integer", "enum": list(range(scale_min, scale_max + 1))}


def response_schema(scale: tuple[int, int], rationale: bool, max_rationale_chars: int = 600) -> dict[str, Any]:
    """The schema the judge is asked for: the score alone, or the rationale-first object for audits."""
    return verdict_schema(*scale, max_rationale_chars) if rationale else score_schema(*scale)


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
    """Fail early when the prompt file uses placeholders this module does not fill, or a likelihood prompt
    lacks its neutral request or ascending edges; a flow-judge prompt is checked by fi_spark.judge.flow_judge."""
    if spec.prompt_format == "flow-judge":
        flow_judge.check_prompt(spec)
        return
    check_placeholders(spec, PLACEHOLDERS)
    if spec.judge_style == "likelihood":
        edges = spec.lift_edges
        if not spec.neutral.strip() or not edges or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(
                f"prompt {spec.path or spec.name}: judge_style likelihood needs `neutral` (a request) and "
                f"`lift_edges` (ascending numbers), got neutral={spec.neutral!r}, lift_edges={edges}"
            )


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
    rationale: bool = True,
) -> list[dict[str, str]]:
    """Chat messages asking for a verdict on one pair; examples are rescaled to `scale` when written for another.

    Without `rationale` the examples' assistant turns show the score alone, as the real answer will be.
    """
    low, high = scale
    reply = (REPLY_RATIONALE if rationale else REPLY_SCORE).format(low=low, high=high)

    def example(values: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        written_for = (int(values.get("scale_min", low)), int(values.get("scale_max", high)))
        values.update(scale_min=low, scale_max=high, scale_mid=(low + high) // 2, reply_format=reply)
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
        "reply_format": reply,
    }
    messages = chat_messages(spec, values, example)
    if not rationale:
        for m in messages:
            if m["role"] == "assistant":
                shown = json.loads(m["content"])
                m["content"] = str(shown["score"]) if isinstance(shown, dict) and "score" in shown else m["content"]
    return messages


@dataclass(frozen=True)
class JudgeVerdict:
    """A judged pair's score, rationale and expected score, or the reason no usable verdict came back."""

    score: int | None
    rationale: str | None
    reason: str | None = None
    detail: str | None = None
    expected_score: float | None = None


def parse_verdict(
    answer: str | None, logprobs: str | None, scale: tuple[int, int], max_rationale_chars: int = 600
) -> JudgeVerdict:
    """Score (a bare integer or an object's `score`), rationale and expected score; bad scores become a reason.

    `answer` is the schema-valid JSON when there is one, else the raw content; `logprobs` as in the
    module docstring (may be None). The expected score is kept only when the score itself is usable.
    """
    value: Any = None
    if answer:
        try:
            value = json.loads(answer)
        except ValueError:
            value = None
    obj = value if isinstance(value, dict) else {"score": value} if isinstance(value, (int, float)) else None
    score = obj.get("score") if obj else None
    if obj is None or isinstance(score, bool) or not isinstance(score, (int, float)):
        detail = f"expected a score or {{rationale, score}}: {answer!r:.200}"
        return JudgeVerdict(None, None, "judge_unparseable", detail)
    rationale = str(obj.get("rationale") or "").strip()[:max_rationale_chars] if "rationale" in obj else None
    if score != int(score) or not scale[0] <= score <= scale[1]:
        return JudgeVerdict(
            None, rationale, "judge_score_out_of_range", f"score {score} outside [{scale[0]}, {scale[1]}]"
        )
    return JudgeVerdict(int(score), rationale, expected_score=expected_score(logprobs, scale))


def expected_score(logprobs: str | None, scale: tuple[int, int]) -> float | None:
    """Sum of score x probability over the score token's alternatives that are scores, renormalized; None if none."""
    top = score_alternatives(logprobs)
    if not top:
        return None
    mass: dict[int, float] = {}
    for token, logprob in top.items():
        text = token.strip()
        if text.isascii() and text.isdigit() and scale[0] <= int(text) <= scale[1]:
            mass[int(text)] = mass.get(int(text), 0.0) + math.exp(logprob)  # "4" and " 4" are one score
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(s * p for s, p in mass.items()) / total


def score_alternatives(logprobs: str | None) -> dict[str, float] | None:
    """The {alternative: logprob} map at the score token: the map itself, or the digit's entry of a token list."""
    value = _load_logprobs(logprobs)
    if isinstance(value, dict):
        return _numeric(value)
    if not isinstance(value, list) or not value:
        return None
    try:
        tokens = [str(entry[0]) for entry in value]
        tops = [dict(entry[1]) for entry in value]
    except (TypeError, IndexError, ValueError):
        return None
    text = "".join(tokens)
    keys = list(_SCORE_KEY.finditer(text))
    digit = _DIGIT.search(text, keys[-1].end() if keys else 0)
    if digit is None:
        return None
    end = 0
    for token, top in zip(tokens, tops, strict=True):
        end += len(token)
        if end > digit.start():
            return _numeric(top)
    return None


def _load_logprobs(logprobs: str | None) -> Any:
    """The stored logprobs JSON (`LLMResult.logprobs`) decoded, or None when absent or not JSON."""
    if not logprobs:
        return None
    try:
        return json.loads(logprobs)
    except ValueError:
        return None


def _numeric(alternatives: dict[Any, Any]) -> dict[str, float]:
    return {
        str(k): float(v) for k, v in alternatives.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# --------------------------------------------------------------------------- yes/no judge (judge_style: yes_no)
# A judge a small model can answer: one yes/no question, the answer constrained to the choice
# {yes, no} (one token) with its logprobs. P(yes) is read from the token's alternatives (renormalized
# over yes and no) and mapped onto the scale as low + (high - low) * P(yes), so `judge.threshold: 4` of
# 1-5 still means "clearly good" (P(yes) >= 0.75 for the expected score; the integer score is that
# value rounded half up, so score >= 4 needs P(yes) >= 0.625). Without logprobs: yes = high, no = low.
YES_NO = ("yes", "no")
YES_NO_MAX_TOKENS = 2  # the choice token, plus room for a server that adds whitespace


def yes_no_schema() -> dict[str, Any]:
    """Schema of the yes/no verdict: a root string enum (a choice for vLLM, one token)."""
    return {"type": "string", "enum": list(YES_NO)}


def yes_probability(logprobs: str | None) -> float | None:
    """P(yes) at the first token, renormalized over its yes/no alternatives (any case, spaces); None if neither."""
    top = _first_alternatives(logprobs)
    if not top:
        return None
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in top.items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0.0 else None


def parse_yes_no(answer: str | None, logprobs: str | None, scale: tuple[int, int]) -> JudgeVerdict:
    """A yes/no answer (bare or JSON string) and its logprobs -> score and expected score on `scale`."""
    word: Any = (answer or "").strip()
    try:
        word = json.loads(word)
    except ValueError:
        pass
    if not isinstance(word, str) or word.strip().lower() not in YES_NO:
        return JudgeVerdict(None, None, "judge_unparseable", f"expected yes or no: {answer!r:.200}")
    low, high = scale
    p_yes = yes_probability(logprobs)
    if p_yes is None:
        return JudgeVerdict(high if word.strip().lower() == "yes" else low, None)
    expected = low + (high - low) * p_yes
    return JudgeVerdict(math.floor(expected + 0.5), None, expected_score=expected)


def build_yes_no_messages(
    spec: PromptSpec, instruction: str, answer: str, source_text: str, max_source_chars: int
) -> list[dict[str, str]]:
    """Chat messages for the yes/no question; an example's assistant turn is its `verdict` word."""
    values = {"document": cut_text(source_text, max_source_chars), "instruction": instruction, "answer": answer}
    messages = chat_messages(spec, values)
    for m in messages:
        if m["role"] == "assistant":
            shown = json.loads(m["content"])
            m["content"] = str(shown.get("verdict", m["content"])) if isinstance(shown, dict) else m["content"]
    return messages


def _first_alternatives(logprobs: str | None) -> dict[str, float] | None:
    """The {alternative: logprob} map of the first token: the map itself, or a token list's first entry."""
    value = _load_logprobs(logprobs)
    if isinstance(value, list) and value and isinstance(value[0], (list, tuple)) and len(value[0]) == 2:
        value = value[0][1]
    return _numeric(value) if isinstance(value, dict) else None


def request_shape(
    spec: PromptSpec, scale: tuple[int, int], rationale: bool, max_rationale_chars: int, max_tokens: int | None
) -> tuple[dict[str, Any] | None, int | None]:
    """(response schema, max_tokens) of the prompt's judge style: yes/no token, score token or rationale object;
    Flow Judge writes free text (feedback, then the score): no schema, the stage's max_tokens."""
    if spec.prompt_format == "flow-judge":
        return None, max_tokens
    if spec.judge_style == "yes_no":
        return yes_no_schema(), YES_NO_MAX_TOKENS
    return response_schema(scale, rationale, max_rationale_chars), max_tokens if rationale else SCORE_MAX_TOKENS


def judge_messages(
    spec: PromptSpec, instruction: str, answer: str, source_text: str, scale: tuple[int, int], max_chars: int,
    rationale: bool,
) -> list[dict[str, str]]:  # fmt: skip
    """The request of the prompt's judge style (build_yes_no_messages or build_messages), or Flow Judge's."""
    if spec.prompt_format == "flow-judge":
        return flow_judge.flow_messages(spec, instruction, answer, source_text, max_chars)
    if spec.judge_style == "yes_no":
        return build_yes_no_messages(spec, instruction, answer, source_text, max_chars)
    return build_messages(spec, instruction, answer, source_text, scale, max_chars, rationale)


def judge_verdict(
    spec: PromptSpec, answer: str | None, logprobs: str | None, scale: tuple[int, int], max_chars: int
) -> JudgeVerdict:
    """The verdict of the prompt's judge style (parse_yes_no or parse_verdict), or of Flow Judge's text."""
    if spec.prompt_format == "flow-judge":
        score, feedback, reason, detail = flow_judge.parse_flow_output(answer, scale, max_chars)
        expected = expected_score(logprobs, scale) if reason is None else None
        return JudgeVerdict(score, feedback, reason, detail, expected)
    if spec.judge_style == "yes_no":
        return parse_yes_no(answer, logprobs, scale)
    return parse_verdict(answer, logprobs, scale, max_chars)
