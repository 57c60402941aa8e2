"""Template instantiation: the prompt that fills a template from a source text, and the checks on the answer.

Consumes a template (`<fi>slot</fi>` text, fi_spark.templates.tags), the text it matched (a chunk or a
region of a document) and the model's structured answer; produces an instruction, an answer, the slot
values and either a pass or one machine-readable reject reason with a detail that carries the measured
value. Pure Python: the instantiate stage runs `evaluate_instantiation` inside a pandas UDF.

Checks, in order; the first failure is the reason (one reason per pair keeps row accounting exact):

==================  =====================================================================================
``unparseable``     the answer is not an object with `instruction` and `answer` strings
``empty_instruction``  the instruction is empty or whitespace
``unfilled_slots``  the instruction still holds a `<fi>` tag or a fragment of one
``empty_answer``    the answer has no word tokens
``answer_too_short``  fewer than `min_answer_tokens` word tokens
``ungrounded``      excerpt coverage (fi_spark.generate.grounding) below `min_grounding`
==================  =====================================================================================

Grounding is measured against the very text the model was shown (after `cut_text`), not the whole
document: an excerpt from a part the model never saw cannot be a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from fi_spark.generate.grounding import DocumentNgrams
from fi_spark.generate.prompting import chat_messages, check_placeholders, cut_text, loads_object
from fi_spark.prompt_spec import PromptSpec
from fi_spark.templates.tags import parse_template

if TYPE_CHECKING:
    from fi_spark.generate.config import InstantiateConfig

PLACEHOLDERS = {"template", "slots", "document"}
# Schema caps, in characters (~4 per token); instruction and answer caps come from InstantiateConfig.
MAX_SLOTS, MAX_SLOT_CHARS = 8, 100
REJECT_REASONS = (
    "unparseable",
    "empty_instruction",
    "unfilled_slots",
    "empty_answer",
    "answer_too_short",
    "ungrounded",
)


class SlotFill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot: str = Field(max_length=MAX_SLOT_CHARS, description="the slot description, as written in the template")
    value: str = Field(max_length=MAX_SLOT_CHARS, description="the concrete words from the document that fill it")


class Instantiation(BaseModel):
    """The structured output asked of the instantiator (sent as the response schema).

    The length caps are part of the schema so a server with structured output must close the JSON in
    time: a small model otherwise rambles until `max_tokens` and the row is lost as truncated_output.
    """

    model_config = ConfigDict(extra="forbid")

    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str = Field(min_length=1)
    answer: str = Field(min_length=1)


def response_schema(n_slots: int, max_instruction_chars: int = 400, max_answer_chars: int = 1500) -> dict[str, Any]:
    """The Instantiation JSON schema with exactly `n_slots` slot values (one per `<fi>` slot of the template).

    The stage sends templates grouped by slot count, so structured output cannot invent extra slots or
    skip one; the cap of MAX_SLOTS applies when a template has more slots than that. The length caps make
    a server with structured output close the JSON in time (a small model otherwise loops to max_tokens).
    """
    schema = Instantiation.model_json_schema()
    schema.pop("description", None)
    count = min(n_slots, MAX_SLOTS)
    props = schema["properties"]
    props["slots"].update(minItems=count, maxItems=count)
    props["instruction"]["maxLength"] = max_instruction_chars
    props["answer"]["maxLength"] = max_answer_chars
    return schema


@dataclass(frozen=True)
class InstantiateRules:
    """The thresholds of the checks, taken from InstantiateConfig."""

    min_grounding: float = 0.8
    min_span: int = 5
    min_answer_tokens: int = 3
    max_source_chars: int = 3000

    @classmethod
    def from_config(cls, cfg: InstantiateConfig) -> InstantiateRules:
        return cls(cfg.min_grounding, cfg.grounding_min_span, cfg.min_answer_tokens, cfg.max_source_chars)


@dataclass
class PairCheck:
    """What came out of one instantiation: the pair's text and measures, and a reject reason or None."""

    instruction: str | None = None
    answer: str | None = None
    slot_values: list[dict[str, str]] = field(default_factory=list)
    grounding: float | None = None
    answer_tokens: int | None = None
    longest_excerpt: int | None = None
    reason: str | None = None
    detail: str | None = None


def slot_list(template: str) -> str:
    """The template's slot descriptions as a numbered list, one per line (the `{slots}` placeholder)."""
    descriptions = parse_template(template).descriptions
    return "\n".join(f"{i}. {d}" for i, d in enumerate(descriptions, 1)) or "(no slots)"


def check_prompt(spec: PromptSpec) -> None:
    """Fail early when the prompt file uses placeholders this module does not fill."""
    check_placeholders(spec, PLACEHOLDERS)


def build_messages(spec: PromptSpec, template: str, source_text: str, max_source_chars: int) -> list[dict[str, str]]:
    """Chat messages asking the model to instantiate `template` from `source_text` (cut to max_source_chars)."""

    def example(values: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        values.setdefault("slots", slot_list(str(values.get("template", ""))))
        return values, output

    values = {"template": template, "slots": slot_list(template), "document": cut_text(source_text, max_source_chars)}
    return chat_messages(spec, values, example)


def evaluate_instantiation(
    parsed: str | None,
    source_text: str,
    rules: InstantiateRules,
    source_ngrams: DocumentNgrams | None = None,
) -> PairCheck:
    """Parse the model's JSON and run the checks; `source_text` is the uncut text the prompt was built from.

    `source_ngrams` may be passed when one source is checked against many answers (built from the cut text).
    """
    obj = loads_object(parsed)
    if obj is None or not isinstance(obj.get("instruction"), str) or not isinstance(obj.get("answer"), str):
        return PairCheck(
            reason="unparseable", detail=f"expected an object with instruction and answer: {parsed!r:.200}"
        )
    instruction = obj["instruction"].strip()
    answer = obj["answer"].strip()
    slots = [
        {"slot": str(s.get("slot", "")), "value": str(s.get("value", ""))}
        for s in obj.get("slots") or []
        if isinstance(s, dict)
    ]
    check = PairCheck(instruction=instruction, answer=answer, slot_values=slots)
    if not instruction:
        return _reject(check, "empty_instruction", "the instruction is empty")
    leftover = parse_template(instruction)
    if leftover.slots or leftover.problems:
        return _reject(check, "unfilled_slots", f"instruction still has <fi> tags: {instruction[:200]}")

    ngrams = source_ngrams or DocumentNgrams(cut_text(source_text, rules.max_source_chars), rules.min_span)
    measured = ngrams.measure(answer)
    check.grounding = measured.coverage
    check.answer_tokens = measured.answer_tokens
    check.longest_excerpt = measured.longest_run
    if measured.answer_tokens == 0:
        return _reject(check, "empty_answer", "the answer has no word tokens")
    if measured.answer_tokens < rules.min_answer_tokens:
        return _reject(
            check, "answer_too_short", f"{measured.answer_tokens} tokens < min_answer_tokens {rules.min_answer_tokens}"
        )
    if measured.coverage < rules.min_grounding:
        return _reject(
            check,
            "ungrounded",
            f"grounding {measured.coverage:.3f} < {rules.min_grounding:.2f} "
            f"({measured.covered_tokens}/{measured.answer_tokens} tokens in excerpts of >= {rules.min_span})",
        )
    return check


def _reject(check: PairCheck, reason: str, detail: str) -> PairCheck:
    check.reason = reason
    check.detail = detail
    return check
