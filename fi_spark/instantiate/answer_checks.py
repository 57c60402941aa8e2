"""Checks on an instantiation: read the model's answer, build the pair, and accept it or name one reject reason.

Consumes the model's answer (our JSON, or a released model's text), the text it was shown and the template;
produces a `PairCheck`: instruction, answer, slot values, grounding measures, and either a pass or the first
failing reason in the order fi_spark.instantiate.prompts's table lists (one reason per pair keeps row
accounting exact). Pure Python: the instantiate stage runs `evaluate_instantiation` inside a Spark task.
Everything is measured against the shown text (`excerpts.shown_text`, the same cut the prompt used), not the
whole document: an excerpt from a part the model never saw cannot be a copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fi_spark.config.instantiate import InstantiateConfig
from fi_spark.instantiate import excerpts, pair_gates
from fi_spark.instantiate.grounding import DocumentNgrams
from fi_spark.prompting import fineinstructions
from fi_spark.prompting.messages import loads_object
from fi_spark.prompting.spec import PromptSpec
from fi_spark.text import instructions
from fi_spark.text.tags import parse_template

SENTENCE_NUMBER = re.compile(r"\[\d{1,3}\]")  # the `[k]` numbering excerpts.number_sentences shows
_DEFAULTS = InstantiateConfig.model_fields  # the one place every instantiate default is written


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
        if spec is None or spec.instruction_style != "filled":  # the small-model gates belong to that contract
            off = {"check_answer_type": False, "min_question_coverage": 0.0, "answer_span": "model"}
            cfg = cfg.model_copy(update={**off, "min_slot_fit": -1.0, "min_relevance": 0.0})
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
    window = rules.answer_style == "window" and rules.prompt_format != "fineinstructions"
    sentences = window or (rules.answer_style == "sentences" and rules.prompt_format != "fineinstructions")
    filled = window or (sentences and rules.instruction_style == "filled")
    if window:  # slot values only: the stage picks the answer window (fi_spark.instantiate.relevance)
        check, chosen = _read_values(answer, parse_template(template or "").descriptions), None
    else:
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
    if window:
        return check
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
    if rules.answer_span == "best":  # the answer is chosen later (fi_spark.instantiate.relevance), checked there
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


def _read_values(answer: str | None, descriptions: list[str]) -> PairCheck:
    """`answer_style: window`: {"values": [...]}, one per slot, paired with the template's slot descriptions."""
    obj = loads_object(answer)
    values = obj.get("values") if obj is not None else None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return PairCheck(reason="unparseable", detail=f"expected an object with a list of values: {answer!r:.200}")
    fills = [{"slot": d, "value": v} for d, v in zip(descriptions, values, strict=False)]
    return PairCheck(instruction="", answer="", slot_values=fills)


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
