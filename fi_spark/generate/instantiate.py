"""Template instantiation: the prompt that fills a template from a source text, and the checks on the answer.

Consumes a template (`<fi>slot</fi>` text, fi_spark.templates.tags), the text it matched (a chunk or a
region of a document) and the model's answer; produces an instruction, an answer, the slot values and
either a pass or one machine-readable reject reason with a detail that carries the measured value. Pure
Python: the instantiate stage runs `evaluate_instantiation` inside a pandas UDF.

Four answer contracts, chosen by the prompt file (fi_spark.config.PromptSpec):

- ``answer_style: copied`` (instantiate.v1): JSON {slots, instruction, answer}, the answer copied verbatim.
- ``answer_style: excerpts`` (instantiate.v2, the default): JSON {compatible, slots, instruction, answer},
  the answer written with excerpt markers `<excerpt>first words<...>last words</excerpt>` plus a few
  connecting words, expanded by fi_spark.generate.excerpts against the shown text; `compatible: false`
  declines. The user turn puts the DOCUMENT before the template, so the templates matched to one document
  share one long prompt prefix (vLLM's automatic prefix caching reuses its KV cache).
- ``answer_style: sentences`` (instantiate.v3): the document is shown with numbered sentences
  (`[1] First. [2] Second.`, fi_spark.generate.excerpts.sentence_spans of the shown text); JSON
  {compatible, slots, instruction, first_sentence, last_sentence}. The answer is the shown text from the
  start of sentence `first_sentence` to the end of `last_sentence`, verbatim by construction (a small
  model can pick two numbers but cannot type resolvable markers). A number beyond the document's
  sentences or a reversed range -> ``excerpt_unresolved``. A range longer than `max_answer_chars` keeps
  fewer sentences (from `first_sentence` on, as many whole sentences as fit, at least one) rather than
  rejecting: the model pointed at where the answer starts, and a wide range is the common small-model
  slip (e.g. 1 to the last sentence), so cutting keeps a verbatim, usable answer.
- ``prompt_format: fineinstructions``: the released template_instantiator's own input and plain-text
  output (fi_spark.generate.fineinstructions); `null` declines. No response schema is sent.

Checks, in order; the first failure is the reason (one reason per pair keeps row accounting exact):

======================  =================================================================================
``unparseable``         the answer is not an instruction and an answer (our JSON or a released shape)
``incompatible``        the model declined: the template does not fit the document (no judge call follows)
``empty_instruction``   the instruction is empty or whitespace
``unfilled_slots``      the instruction still holds a `<fi>` tag or a fragment of one
``excerpt_*``           a marker is malformed, ambiguous, unresolved or overlaps another (excerpts module)
``empty_answer``        the (expanded) answer has no word tokens
``answer_too_short``    fewer than `min_answer_tokens` word tokens
``ungrounded``          excerpt coverage (fi_spark.generate.grounding) of the expanded answer below
                        `min_grounding`
======================  =================================================================================

Everything is measured against the shown text (`excerpts.shown_text`, the same cut the prompt used),
not the whole document: an excerpt from a part the model never saw cannot be a copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fi_spark.generate import excerpts, fineinstructions, pair_gates, slot_choices
from fi_spark.generate.config import InstantiateConfig
from fi_spark.generate.grounding import DocumentNgrams
from fi_spark.generate.prompting import chat_messages, check_placeholders, loads_object
from fi_spark.prompt_spec import PromptSpec
from fi_spark.section import ConfigError
from fi_spark.templates.tags import parse_template
from fi_spark.text import instructions

PLACEHOLDERS = {"template", "slots", "document"}
# Schema caps, in characters (~4 per token); instruction and answer caps come from InstantiateConfig.
MAX_SLOTS, MAX_SLOT_CHARS = 8, 100
# `answer_style: sentences`: the schema's maximum sentence number (3000 shown characters hold ~20-40).
MAX_SENTENCES = 40
# Marker shape the excerpts schema enforces: up to 4 markers, each side 1-60 characters, short connectors,
# or nothing at all (a declined template). Bounded like the genericize pattern, because vLLM's grammar
# compiler rejects some unbounded or wide regexes.
EXCERPT_PATTERN = r"^([^<]{0,80}(<excerpt>[^<]{1,60}<\.\.\.>[^<]{1,60}</excerpt>[^<]{0,80}){1,4})?$"
REJECT_REASONS = (
    "unparseable",
    "incompatible",
    "empty_instruction",
    "unfilled_slots",
    "sentence_number_in_instruction",
    "slot_value_empty",
    "instruction_cut",
    "instruction_too_long",
    *instructions.REASONS,
    "slot_not_in_source",
    *excerpts.REASONS,
    "answer_fragment",
    "empty_answer",
    "answer_too_short",
    "ungrounded",
    "answer_misses_slots",
    "answer_misses_question",
    "answer_type_mismatch",
    "slot_type_mismatch",
    "off_topic",
)
_DEFAULTS = InstantiateConfig.model_fields  # the one place every instantiate default is written


class SlotFill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot: str = Field(max_length=MAX_SLOT_CHARS, description="the slot description, as written in the template")
    value: str = Field(max_length=MAX_SLOT_CHARS, description="the concrete words from the document that fill it")


class Instantiation(BaseModel):
    """The structured output asked by `answer_style: copied` prompts (sent as the response schema).

    The length caps are part of the schema so a server with structured output must close the JSON in
    time: a small model otherwise rambles until `max_tokens` and the row is lost as truncated_output.
    """

    model_config = ConfigDict(extra="forbid")

    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class ExcerptInstantiation(BaseModel):
    """`answer_style: excerpts`: decide first (`compatible`), then fill slots, then answer with markers."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str
    answer: str


class SentenceInstantiation(BaseModel):
    """`answer_style: sentences`: decide, fill slots, then choose the answer as a range of numbered sentences."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str
    first_sentence: int = Field(ge=1, le=MAX_SENTENCES)
    last_sentence: int = Field(ge=1, le=MAX_SENTENCES)


class FilledInstantiation(BaseModel):
    """`instruction_style: filled`: decide, fill the slots, choose the sentences; the instruction is the template
    with the values filled in (pair_gates.fill_template), so the model never writes it."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    first_sentence: int = Field(ge=1, le=MAX_SENTENCES)
    last_sentence: int = Field(ge=1, le=MAX_SENTENCES)


SENTENCE_NUMBER = re.compile(r"\[\d{1,3}\]")  # the `[k]` numbering excerpts.number_sentences shows
_SCHEMAS: dict[str, type[BaseModel]] = {"excerpts": ExcerptInstantiation, "sentences": SentenceInstantiation}


def response_schema(
    n_slots: int,
    max_instruction_chars: int | None = None,
    max_answer_chars: int | None = None,
    *,
    spec: PromptSpec | None = None,
) -> dict[str, Any] | None:
    """The JSON schema for a template with exactly `n_slots` slots; None for the released models' format.

    The stage sends templates grouped by slot count, so structured output cannot invent extra slots or
    skip one; the cap of MAX_SLOTS applies when a template has more slots than that. The length caps make
    a server with structured output close the JSON in time (a small model otherwise loops to max_tokens).
    With an excerpts prompt the answer must contain at least one well-formed marker (EXCERPT_PATTERN);
    with a sentences prompt the answer is two sentence numbers in 1..MAX_SENTENCES. Both decide first and
    may decline with `{"compatible": false}` alone (`_decline_or`).
    """
    style = spec.answer_style if spec is not None else "copied"
    if spec is not None and spec.prompt_format == "fineinstructions":
        return None
    filled = spec is not None and spec.instruction_style == "filled" and style == "sentences"
    schema = (FilledInstantiation if filled else _SCHEMAS.get(style, Instantiation)).model_json_schema()
    schema.pop("description", None)
    count = min(n_slots, MAX_SLOTS)
    props = schema["properties"]
    props["slots"].update(minItems=count, maxItems=count)
    if not filled:
        props["instruction"]["maxLength"] = max_instruction_chars or _DEFAULTS["max_instruction_chars"].default
    if style == "excerpts":  # vLLM refuses a maxLength beside a pattern; the pattern bounds the length
        props["answer"]["pattern"] = EXCERPT_PATTERN
    elif style != "sentences":
        props["answer"]["maxLength"] = max_answer_chars or _DEFAULTS["max_answer_chars"].default
        return schema
    if spec is not None and not spec.decline:
        props["compatible"] = {"const": True}
        return schema
    return _decline_or(schema)


DECLINE = {"type": "object", "properties": {"compatible": {"const": False}}, "required": ["compatible"],
           "additionalProperties": False}  # fmt: skip


def _decline_or(schema: dict[str, Any]) -> dict[str, Any]:
    """The whole answer with `compatible: true`, or `{"compatible": false}` and nothing more.

    Most matches are declined (25 of 30 of bench/excerpts_pairs.json with SmolLM2-135M); with `compatible`
    as a plain boolean a declined answer still wrote empty slots, an empty instruction and the answer fields.
    Under this union the grammar closes the object right after `false`. bench/decline_stop.py, local vLLM,
    instantiate.v3 on those 30 matches, same prompts: 2,195 -> 527 generated tokens, 174 -> 88
    server-seconds, the same decisions (the decision is the same token at the same position). Accepted
    branch first: a server that answers with the first branch (the test server) fills it.
    """
    defs = schema.pop("$defs", None)
    schema["properties"]["compatible"] = {"const": True}
    return {"anyOf": [schema, DECLINE], **({"$defs": defs} if defs else {})}


@dataclass(frozen=True)
class InstantiateRules:
    """The thresholds of the checks (defaults: InstantiateConfig's) and the answer contract of the prompt."""

    min_grounding: float = _DEFAULTS["min_grounding"].default
    min_span: int = _DEFAULTS["grounding_min_span"].default
    min_answer_tokens: int = _DEFAULTS["min_answer_tokens"].default
    max_source_chars: int = _DEFAULTS["max_source_chars"].default
    prompt_format: str = "fi-spark"
    max_answer_chars: int = _DEFAULTS["max_answer_chars"].default  # answer_style sentences: the span cap
    answer_style: str = "copied"
    instruction_style: str = "written"
    max_instruction_chars: int = _DEFAULTS["max_instruction_chars"].default
    slot_values_from_source: bool = False
    min_slot_coverage: float = 0.0
    check_answer_type: bool = False
    min_question_coverage: float = 0.0
    answer_span: str = "model"  # `best`: the stage picks the answer window later; its checks run there

    @classmethod
    def from_config(cls, cfg: InstantiateConfig, spec: PromptSpec | None = None) -> InstantiateRules:
        fmt = spec.prompt_format if spec is not None else "fi-spark"
        style = spec.answer_style if spec is not None else "copied"
        return cls(
            cfg.min_grounding, cfg.grounding_min_span, cfg.min_answer_tokens, cfg.max_source_chars, fmt,
            cfg.max_answer_chars, style, spec.instruction_style if spec is not None else "written",
            cfg.max_instruction_chars, cfg.slot_values_from_source, cfg.min_slot_coverage, cfg.check_answer_type,
            cfg.min_question_coverage, cfg.answer_span,
        )  # fmt: skip


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
    excerpt_share: float | None = None  # share of the expanded answer's characters that came from markers


def slot_list(template: str) -> str:
    """The template's slot descriptions as a numbered list, one per line (the `{slots}` placeholder)."""
    descriptions = parse_template(template).descriptions
    return "\n".join(f"{i}. {d}" for i, d in enumerate(descriptions, 1)) or "(no slots)"


def check_prompt(spec: PromptSpec) -> None:
    """Fail early when the prompt file uses placeholders this module does not fill, or mixes contracts."""
    if spec.prompt_format == "fineinstructions":
        if spec.system.strip() or spec.examples or spec.user.strip():
            raise ConfigError(
                f"prompt {spec.path or spec.name}: prompt_format fineinstructions builds its own user turn "
                "(the released model's JSON input); leave system, user and examples empty"
            )
        return
    check_placeholders(spec, PLACEHOLDERS)


def build_messages(
    spec: PromptSpec,
    template: str,
    source_text: str,
    max_source_chars: int,
    choices: list[list[str]] | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking the model to instantiate `template` from `source_text` (cut to max_source_chars);
    `choices`: per slot, phrases of the document to copy one from (fi_spark.generate.slot_choices)."""
    shown = excerpts.shown_text(source_text, max_source_chars)
    if spec.prompt_format == "fineinstructions":
        return fineinstructions.instantiator_messages(template, shown)

    numbered = spec.answer_style == "sentences"

    def example(values: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        values.setdefault("slots", slot_list(str(values.get("template", ""))))
        if numbered:
            values["document"] = excerpts.number_sentences(str(values.get("document", "")))
        return values, output

    document = excerpts.number_sentences(shown) if numbered else shown
    slots = slot_list(template)
    if choices is not None:
        slots = slot_choices.slot_list_with_choices(parse_template(template).descriptions, choices)
    values = {"template": template, "slots": slots, "document": document}
    return chat_messages(spec, values, example)


def evaluate_instantiation(
    answer: str | None,
    shown_text: str,
    rules: InstantiateRules,
    source_ngrams: DocumentNgrams | None = None,
    template: str | None = None,
) -> PairCheck:
    """Read the model's answer and run the checks against the text it was shown.

    `answer` is the schema-valid JSON (`parsed`) for our formats, the raw content for the released one.
    `shown_text` may also be the uncut source: it is cut with `rules.max_source_chars` (a no-op when it
    already was). `source_ngrams` may be passed when one source is checked against many answers.
    `template` is needed by `instruction_style: filled` (the instruction is the template with its values).
    """
    shown = excerpts.shown_text(shown_text, rules.max_source_chars)
    sentences = rules.answer_style == "sentences" and rules.prompt_format != "fineinstructions"
    filled = sentences and rules.instruction_style == "filled"
    check, chosen = _read_sentences(answer, filled) if sentences else (_read(answer, rules.prompt_format), None)
    if check.reason is not None:
        return check
    for fill in check.slot_values:  # a model that copied the whole `a | b` choice list keeps the first choice
        fill["value"] = fill["value"].split(" | ")[0].strip()
    values = [s["value"] for s in check.slot_values]
    if filled:
        descriptions = parse_template(template or "").descriptions
        empty = pair_gates.empty_values(descriptions, values)
        if empty:
            return _reject(check, "slot_value_empty", f"slot {empty[0]!r} has no value of its own: {values}")
        check.instruction = pair_gates.fill_template(template or "", values)
    instruction, raw_answer = (check.instruction or "").strip(), (check.answer or "").strip()
    check.instruction, check.answer = instruction, raw_answer
    if not instruction:
        return _reject(check, "empty_instruction", "the instruction is empty")
    if not filled and rules.prompt_format != "fineinstructions" and len(instruction) >= rules.max_instruction_chars:
        return _reject(check, "instruction_cut", f"{len(instruction)} chars = the schema's cap: {instruction[-80:]!r}")
    leftover = parse_template(instruction)
    if leftover.slots or leftover.problems:
        return _reject(check, "unfilled_slots", f"instruction still has <fi> tags: {instruction[:200]}")
    if chosen is not None and SENTENCE_NUMBER.search(instruction):  # the shown numbering leaked into the request
        return _reject(check, "sentence_number_in_instruction", f"instruction holds a [k] marker: {instruction[:200]}")
    if len(instruction) > rules.max_instruction_chars:
        return _reject(check, "instruction_too_long", f"{len(instruction)} > {rules.max_instruction_chars} chars")
    problem = instructions.request_problem(instruction, extractive=rules.check_answer_type)
    if problem:
        return _reject(check, *problem)
    if sentences and rules.slot_values_from_source:
        missing = pair_gates.values_missing_from(values, shown)
        if missing:
            return _reject(check, "slot_not_in_source", f"not words of the document: {missing[:3]}")
    if chosen is not None:
        span, problem_text = sentence_range(shown, chosen[0], chosen[1], rules.max_answer_chars)
        if span is None:
            return _reject(check, "excerpt_unresolved", problem_text)
        check.answer, check.excerpt_share = shown[span[0] : span[1]], 1.0
        cut = pair_gates.fragment(check.answer) if rules.answer_span != "best" else None  # best: windows are whole
        if cut:
            return _reject(check, "answer_fragment", cut)
    elif excerpts.has_markers(raw_answer):
        expanded = excerpts.expand(raw_answer, shown)
        if expanded.reason is not None:
            return _reject(check, expanded.reason, expanded.detail or "")
        check.answer, check.excerpt_share = expanded.text, expanded.excerpt_share

    ngrams = source_ngrams or DocumentNgrams(shown, rules.min_span)
    measured = ngrams.measure(check.answer or "")
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
    if rules.answer_span == "best":  # the answer is chosen later (fi_spark.generate.relevance), checked there
        return check
    if rules.min_slot_coverage > 0:
        missing = pair_gates.values_missing_from(values, check.answer or "", rules.min_slot_coverage)
        if missing:
            return _reject(check, "answer_misses_slots", f"the answer never names {missing[:3]}")
    if rules.min_question_coverage > 0 and template:
        covered = pair_gates.question_coverage(template, check.answer or "")
        if covered < rules.min_question_coverage:
            wanted = pair_gates.question_words(template)
            return _reject(check, "answer_misses_question", f"mentions {covered:.2f} of {wanted[:6]}")
    if rules.check_answer_type:
        mismatch = pair_gates.answer_type_problem(instruction, check.answer or "", values)
        if mismatch:
            return _reject(check, "answer_type_mismatch", mismatch)
    return check


def sentence_range(shown: str, first: int, last: int, max_chars: int) -> tuple[tuple[int, int] | None, str]:
    """Sentences `first`..`last` (1-based) of `shown` as one [start, end) span, or None and why not.

    Over `max_chars`, whole sentences are dropped from the end (at least `first` itself is kept).
    """
    spans = excerpts.sentence_spans(shown)
    n = len(spans)
    for name, k in (("first_sentence", first), ("last_sentence", last)):
        if not 1 <= k <= n:
            return None, f"{name} {k} is not a sentence of the shown text (1..{n})"
    if last < first:
        return None, f"last_sentence {last} < first_sentence {first}"
    start = spans[first - 1][0]
    if last > first or "\n" in shown[start : spans[last - 1][1]]:
        start = pair_gates.drop_heading_lines(shown, start, spans[last - 1][1])
    end_k = last
    while end_k > first and spans[end_k - 1][1] - start > max_chars:
        end_k -= 1
    return (start, spans[end_k - 1][1]), ""


def _read_sentences(answer: str | None, filled: bool = False) -> tuple[PairCheck, tuple[int, int] | None]:
    """`answer_style: sentences`: the instruction (none when `filled`), slot values and chosen range, or a reject."""
    obj = loads_object(answer)
    if obj is not None and obj.get("compatible") is False:
        return PairCheck(reason="incompatible", detail="the model answered compatible: false"), None
    first, last = (obj.get("first_sentence"), obj.get("last_sentence")) if obj is not None else (None, None)
    if (
        obj is None
        or not (filled or isinstance(obj.get("instruction"), str))
        or not isinstance(first, int)
        or not isinstance(last, int)
        or isinstance(first, bool)
        or isinstance(last, bool)
    ):
        detail = f"expected an object with instruction, first_sentence and last_sentence: {answer!r:.200}"
        return PairCheck(reason="unparseable", detail=detail), None
    check = PairCheck(instruction=obj.get("instruction", ""), answer="", slot_values=_slot_values(obj))
    return check, (first, last)


def _slot_values(obj: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"slot": str(s.get("slot", "")), "value": str(s.get("value", ""))}
        for s in obj.get("slots") or []
        if isinstance(s, dict)
    ]


def _read(answer: str | None, prompt_format: str) -> PairCheck:
    """The instruction, raw answer and slot values of one answer, or an unparseable/incompatible reject."""
    if prompt_format == "fineinstructions":
        released = fineinstructions.parse_instantiator_output(answer)
        if released.declined:
            return PairCheck(reason="incompatible", detail="the model answered null: the template does not fit")
        if released.problem:
            return PairCheck(reason="unparseable", detail=f"{released.problem}: {answer!r:.200}")
        return PairCheck(instruction=released.instruction, answer=released.answer)
    if (answer or "").strip() == "null":
        return PairCheck(reason="incompatible", detail="the model answered null: the template does not fit")
    obj = loads_object(answer)
    if obj is not None and obj.get("compatible") is False:
        return PairCheck(reason="incompatible", detail="the model answered compatible: false")
    value = obj.get("answer") if obj is not None else None
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):  # by-construction parts
        value = excerpts.render_parts(value)
    if obj is None or not isinstance(obj.get("instruction"), str) or not isinstance(value, str):
        return PairCheck(
            reason="unparseable", detail=f"expected an object with instruction and answer: {answer!r:.200}"
        )
    return PairCheck(instruction=obj["instruction"], answer=value, slot_values=_slot_values(obj))


def _reject(check: PairCheck, reason: str, detail: str) -> PairCheck:
    check.reason = reason
    check.detail = detail
    return check
