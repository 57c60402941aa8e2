"""Template validation: one verdict per template, with a machine-readable reason when it fails.

The paper kept ~18M of 21.4M raw templates; these checks are the filter. They run on the
genericizer's output and on imported template banks alike (one rule set, `TemplatesConfig`).
The first failing check in `REASONS` order is the reason; the detail names the offending part,
so a person reading `template_rejects` sees why without re-running anything.

"Leftover specifics" is the check that catches a genericizer that copied the query instead of
abstracting it: tokens of the query that look specific (numbers, capitalized words that do not
start a sentence, quoted spans, URLs/emails, mixed-case words such as iPhone) must not survive
in the template's text outside slots. It is a heuristic, so it can be switched off or given
a tolerance in config (`templates.check_leftover_specifics`, `templates.max_leftover_specifics`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fi_spark.config.genericize import TemplatesConfig
from fi_spark.text import instructions
from fi_spark.text.tags import ParsedTemplate, parse_template

# Checked in this order; the first failure is the row's reason.
REASONS = {
    "empty_template": "the model returned no template text",
    "malformed_tags": "unbalanced, nested or broken <fi> tags",
    "empty_slot": "a slot without a description",
    "too_few_slots": "fewer slots than templates.min_slots (a template must abstract something)",
    "too_many_slots": "more slots than templates.max_slots",
    "slot_too_long": "a slot description longer than templates.max_slot_chars (copied content)",
    "slot_splits_word": "a slot glued to letters outside it, cutting through a word (`mé<fi>l</fi>m`)",
    "slot_too_short": "a slot description shorter than templates.min_slot_chars (`<fi>x</fi>` says nothing)",
    "repeated_slot": "two slots with the same description (which value goes where is undecidable)",
    "template_too_short": "template shorter than templates.min_chars",
    "template_too_long": "template longer than templates.max_chars",
    "mostly_slots": "slot descriptions make up more than templates.max_slot_share of the template's text",
    "leftover_specifics": "query specifics copied outside slots where a slot was expected",
    "placeholder": "markup outside the slots a person would fill in (`[keyword]`, `{topic}`, `___`): not a <fi> slot",
    "needs_input": "the words outside the slots point at an input no document supplies (`the given sentence`)",
    "drifted_from_query": "the words outside the slots are mostly not the query's: the model wrote on past it",
    "missing_description": "no compatible document description",
    "description_too_short": "description shorter than templates.min_description_chars",
    "description_too_long": "description longer than templates.max_description_chars",
    "repetitive_description": "the description repeats itself (a looping model): a repeated word n-gram",
}

_WORD = re.compile(r"[^\W_][\w'’.-]*[^\W_]|[^\W_]", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")
_QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”")
_URL_OR_EMAIL = re.compile(r"https?://\S+|www\.\S+|\b[\w.+-]+@[\w-]+\.[\w.]+\b")
_ALWAYS_CAPITALIZED = {"I", "I'm", "I've", "I'd", "I'll", "OK"}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None
    detail: str | None = None
    parsed: ParsedTemplate | None = None

    @staticmethod
    def reject(reason: str, detail: str, parsed: ParsedTemplate | None = None) -> Verdict:
        assert reason in REASONS, reason
        return Verdict(False, reason, detail[:500], parsed)


def validate_template(
    template: str | None,
    description: str | None,
    cfg: TemplatesConfig,
    query: str | None = None,
) -> Verdict:
    """Check a template (and its compatible document description) against the rules in `cfg`.

    `query` is the original query the template was made from; without it (imported banks) the
    leftover-specifics check is skipped.
    """
    if not isinstance(template, str) or not template.strip():
        return Verdict.reject("empty_template", "template is empty")
    parsed = parse_template(snap_slots(template) if cfg.snap_slots else template)
    structural = [p for p in parsed.problems if p.kind != "empty_slot"]
    if structural:
        detail = "; ".join(f"{p.kind} at {p.position}: {p.detail!r}" for p in structural[:5])
        return Verdict.reject("malformed_tags", detail, parsed)
    if any(p.kind == "empty_slot" for p in parsed.problems):
        return Verdict.reject("empty_slot", f"{len(parsed.problems)} empty slot(s)", parsed)
    n_slots = len(parsed.slots)
    if n_slots < cfg.min_slots:
        return Verdict.reject("too_few_slots", f"{n_slots} slot(s), need at least {cfg.min_slots}", parsed)
    if n_slots > cfg.max_slots:
        return Verdict.reject("too_many_slots", f"{n_slots} slots, at most {cfg.max_slots}", parsed)
    long_slots = [s.description for s in parsed.slots if len(s.description) > cfg.max_slot_chars]
    if long_slots:
        return Verdict.reject("slot_too_long", f"{len(long_slots[0])} chars: {long_slots[0][:80]!r}", parsed)
    glued = glued_slot(parsed)
    if glued:
        return Verdict.reject("slot_splits_word", f"slot inside a word: {glued!r}", parsed)
    literal = parsed.literal_text(placeholder=" X ")
    for reason, rule in (("placeholder", instructions.placeholder), ("needs_input", instructions.needs_input)):
        evidence = rule(literal)
        if evidence:
            return Verdict.reject(reason, f"{evidence!r} outside the slots of {parsed.canonical()[:200]!r}", parsed)
    short_slots = [s.description for s in parsed.slots if len(s.description) < cfg.min_slot_chars]
    if short_slots:
        return Verdict.reject("slot_too_short", f"{len(short_slots[0])} chars: <fi>{short_slots[0]}</fi>", parsed)
    seen: dict[str, str] = {}
    for slot in parsed.slots:
        key = slot.description.casefold()
        if key in seen:
            return Verdict.reject("repeated_slot", f"<fi>{slot.description}</fi> appears twice", parsed)
        seen[key] = slot.description
    canonical = parsed.canonical()
    if len(canonical) < cfg.min_chars:
        return Verdict.reject("template_too_short", f"{len(canonical)} < {cfg.min_chars} chars", parsed)
    if len(canonical) > cfg.max_chars:
        return Verdict.reject("template_too_long", f"{len(canonical)} > {cfg.max_chars} chars", parsed)
    share = slot_share(parsed)
    if share > cfg.max_slot_share:
        return Verdict.reject(
            "mostly_slots", f"slot text is {share:.2f} of the template > {cfg.max_slot_share:.2f}", parsed
        )
    if query and cfg.min_query_word_share > 0:
        share, foreign = query_word_share(query, parsed)
        if share < cfg.min_query_word_share:
            return Verdict.reject(
                "drifted_from_query",
                f"{share:.2f} of the words outside slots come from the query < {cfg.min_query_word_share:.2f}; "
                f"not in it: {', '.join(foreign[:8])}",
                parsed,
            )
    if cfg.check_leftover_specifics and query:
        leftovers = leftover_specifics(query, parsed)
        if len(leftovers) > cfg.max_leftover_specifics:
            return Verdict.reject("leftover_specifics", "kept: " + ", ".join(repr(t) for t in leftovers[:10]), parsed)
    desc = (description or "").strip()
    if not desc:
        return Verdict.reject("missing_description", "compatible document description is empty", parsed)
    if len(desc) < cfg.min_description_chars:
        return Verdict.reject("description_too_short", f"{len(desc)} < {cfg.min_description_chars} chars", parsed)
    if len(desc) > cfg.max_description_chars:
        return Verdict.reject("description_too_long", f"{len(desc)} > {cfg.max_description_chars} chars", parsed)
    repeated = repeated_ngram(desc, cfg.description_repeat_ngram)
    if repeated:
        return Verdict.reject("repetitive_description", f"{repeated!r} occurs more than once", parsed)
    return Verdict(True, parsed=parsed)


def snap_slots(template: str, max_glued: int = 3) -> str:
    """Move slot boundaries that cut through a word out to the whole word, where that is unambiguous.

    A small genericizer often slots a word's stem and leaves its ending outside (`<fi>a profession</fi>s`,
    `un<fi>an adjective</fi>`): the slot was meant to replace the whole word. A glued run of at most
    `max_glued` letters is taken into the slot (dropped: the slot's value stands for the whole word); a
    longer run is a word of its own, so the template is left as it is and `slot_splits_word` rejects it.
    Templates with broken tags are returned unchanged (validation names their problem).
    """
    parsed = parse_template(template)
    if parsed.problems or not parsed.slots:
        return template
    text, out, pos = parsed.text, [], 0
    for slot in parsed.slots:
        start, end = slot.start, slot.end
        while start > pos and text[start - 1].isalnum():
            start -= 1
        after = end
        while after < len(text) and text[after].isalnum():
            after += 1
        if slot.start - start > max_glued or after - end > max_glued or (start < slot.start and start == pos > 0):
            return template  # a whole word glued on, or glued to the previous slot: ambiguous
        out.append(text[pos:start])
        out.append(text[slot.start : slot.end])
        pos = after
    out.append(text[pos:])
    return "".join(out)


def query_word_share(query: str, parsed: ParsedTemplate) -> tuple[float, list[str]]:
    """Share of the template's literal words (outside slots) that occur in `query`, and the ones that do not.

    The genericizer's job is to keep the query's wording and slot its specifics; a template whose literal
    words are mostly new was written past the query (`What is an actuary? An engineer who helps people ...`).
    """
    query_words = {w.casefold() for w in _WORD.findall(query)}
    words = [w for w in _WORD.findall(parsed.literal_text()) if not w.isdigit()]
    if not words:
        return 1.0, []
    foreign = [w for w in words if w.casefold() not in query_words]
    return 1 - len(foreign) / len(words), foreign


def glued_slot(parsed: ParsedTemplate) -> str | None:
    """The first slot with a letter or digit right against its tag outside it (`mé<fi>l</fi>m`), as text."""
    text = parsed.text
    for slot in parsed.slots:
        before = text[slot.start - 1] if slot.start > 0 else " "
        after = text[slot.end] if slot.end < len(text) else " "
        if before.isalnum() or after.isalnum():
            return text[max(0, slot.start - 10) : slot.end + 10]
    return None


def slot_share(parsed: ParsedTemplate) -> float:
    """Characters of slot descriptions / characters of the template with each slot written as its description."""
    slot_chars = sum(len(s.description) for s in parsed.slots)
    literal = len(_collapse_spaces(parsed.literal_text(placeholder="")))
    total = slot_chars + literal
    return slot_chars / total if total else 0.0


def repeated_ngram(text: str, n: int) -> str | None:
    """The first word n-gram (case-folded) that occurs twice in `text`, or None."""
    words = [w.casefold() for w in _WORD.findall(text)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            return " ".join(gram)
        seen.add(gram)
    return None


def _collapse_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def query_specifics(query: str) -> list[str]:
    """Tokens of `query` that name something concrete, in order of appearance, without repeats."""
    found: list[str] = []
    for match in _URL_OR_EMAIL.finditer(query):
        found.append(match.group(0).rstrip(".,;:!?)"))
    for match in _QUOTED.finditer(query):
        found.append((match.group(1) or match.group(2)).strip())
    for match in _WORD.finditer(query):
        word = match.group(0)
        if word in _ALWAYS_CAPITALIZED or (len(word) == 1 and word.isalpha()):
            continue
        has_digit = any(c.isdigit() for c in word)
        inner_upper = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
        capitalized = word[0].isupper() and not _starts_sentence(query, match.start())
        if has_digit or inner_upper or capitalized or (word.isupper() and len(word) > 1):
            found.append(word)
    seen: set[str] = set()
    return [t for t in found if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def leftover_specifics(query: str, parsed: ParsedTemplate) -> list[str]:
    """Specifics of `query` that still appear, as whole words, in the template outside its slots."""
    literal = parsed.literal_text()
    return [t for t in query_specifics(query) if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", literal)]


def _starts_sentence(text: str, pos: int) -> bool:
    before = text[:pos]
    return not before.strip() or bool(_SENTENCE_END.search(before)) or before.rstrip().endswith(('"', "“", "(", "-"))
