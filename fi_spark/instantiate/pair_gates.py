"""Checks that an instantiated pair is one a person would keep: pure functions, no Spark, no model.

The instantiate stage (fi_spark.instantiate.prompts) runs them after grounding; each failing check is one
machine-readable reject reason with its evidence. What they protect, from pairs read by hand
(bench/labeled/, measured per gate by bench/pair_gates.py):

- the instruction is the template with its slots filled (`fill_template`), so it can neither be cut at a
  length cap nor drift from the template; a slot value must be words of the document
  (`values_missing_from`: `slot_not_in_source`), so the request is about what the document says;
- the instruction reads alone (fi_spark.text.instructions: `placeholder`, `needs_input`);
- the answer covers what was asked about (`values_missing_from` on the answer: `answer_misses_slots`): a
  sentence range that never names the filled entity answers another question;
- the answer holds an answer of the kind asked (`answer_type_problem`: "Who is X?" is answered by a
  sentence defining X, "When ...?" by a time, "How many ...?" by a number);
- the answer is no bare heading (`drop_heading_lines`: a "Title" line of "Title\n\nparagraph" documents is
  not part of the answer) and no fragment (`fragment`: it starts and ends where sentences do).
"""

from __future__ import annotations

import re

from fi_spark.text.tags import parse_template

REASONS = {
    "slot_value_empty": "a slot was left empty or filled with its own description",
    "slot_not_in_source": "a slot value is not words of the document: the request is not about what it says",
    "instruction_too_long": "the filled instruction is longer than instantiate.max_instruction_chars (never cut)",
    "instruction_cut": "the written instruction reached the response schema's length cap: it was cut off",
    "answer_misses_slots": "the answer never names what the instruction asks about (a filled slot value)",
    "answer_misses_question": "the answer names the filled entity but not what the template asks about it",
    "answer_fragment": "the answer does not start or end where a sentence does, or is only a heading",
    "answer_type_mismatch": "the answer holds no answer of the kind asked (a definition, a time, a number, a "
    "place, a cause)",
}

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_WH = re.compile(r"^(?:what|who|whom|whose|which|when|where|why|how)\b", re.IGNORECASE)
_VAGUE = re.compile(r"^(?:[Tt]he|[Tt]his|[Tt]hat|[Tt]hese|[Tt]hose)\s+[a-z][a-z\s-]*$")  # `The book`, `this process`
_SINGLE_NAME = re.compile(r"^(?!.*\b(?:and|&)\b)(?:[A-Z][\w.'-]*\s+)*[A-Z][\w.'-]*[^s\W]$")  # Capitalized, not plural
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_SENTENCE_START = re.compile(r"^[\"'\u201c\u2018(\[]*[A-Z0-9\u00C0-\u024F]")
# Words that say nothing about what a value names: a value must be found by its other words.
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or as is are was were be been its it this that these those "
    "his her their our your my some any each every one two".split()
)


def content_words(text: str) -> list[str]:
    """Case-folded word tokens of `text` without stopwords (what names something)."""
    return [w for w in (m.group(0).casefold() for m in _WORD.finditer(text or "")) if w not in STOPWORDS]


def fill_template(template: str, values: list[str]) -> str:
    """`template` with its slots replaced, in order, by `values` (stripped); a slot opening a sentence is
    capitalized. The caller checks the counts match (extra values are ignored, missing slots stay empty)."""
    parsed = parse_template(template)
    parts: list[str] = []
    pos = 0
    for i, slot in enumerate(parsed.slots):
        before = parsed.text[pos : slot.start]
        value = (values[i] if i < len(values) else "").strip()
        if re.search(r"\b(?:the|a|an)\s*$", before, re.IGNORECASE):  # `the <fi>..</fi>` + `the Netherlands`
            value = _ARTICLE.sub("", value)
        singular = _SINGLE_NAME.match(value) or re.match(r"(?:a|an)\s", value, re.IGNORECASE)
        if re.search(r"\b(?:who|what) are\s*$", before, re.IGNORECASE) and singular:
            before = before[: before.lower().rindex("are")] + "is "  # `Who are <fi>..</fi>` + one person's name
        opens = not (parts or before.strip()) or re.search(r"[.!?]\s*$", before) is not None
        if opens and value[:1].islower():
            value = value[0].upper() + value[1:]
        elif not opens and _ARTICLE.match(value):  # `The United States` copied from a sentence start
            value = value[0].lower() + value[1:]
        parts.extend((before, value))
        pos = slot.end
    parts.append(parsed.text[pos:])
    filled = re.sub(r"\s+", " ", "".join(parts)).strip()
    if _WH.match(filled) and not re.search(r"[.?!]$", filled):  # `What is Cricket` (the query had no mark)
        filled += "?"
    return filled


def empty_values(descriptions: list[str], values: list[str]) -> list[str]:
    """Slots whose value names nothing of its own: empty, the slot's own description (the model copied the
    slot), a generic phrase (`the book`, `the process`: an article and lowercase words, which point at a
    thing the reader is not told), or the value another slot already has (`which weighs more, X or X?`)."""
    seen: set[tuple[str, ...]] = set()
    empty = []
    for d, v in zip(descriptions, values, strict=False):
        words = tuple(content_words(v))
        generic = bool(_VAGUE.match(v.strip()))
        if not words or list(words) == content_words(d) or generic or words in seen:
            empty.append(d)
        seen.add(words)
    return empty + descriptions[len(values) :]


def values_missing_from(values: list[str], text: str, min_share: float = 1.0) -> list[str]:
    """Values of which fewer than `min_share` of the content words occur in `text` (as words, any case).

    A value with no content word (only stopwords or digits-free punctuation) is never missing."""
    words = set(content_words(text))
    missing = []
    for value in values:
        wanted = content_words(value)
        if wanted and sum(w in words for w in wanted) / len(wanted) < min_share:
            missing.append(value)
    return missing


def is_heading(line: str, max_words: int = 12) -> bool:
    """A short line without sentence punctuation at its end: a title or section heading."""
    stripped = line.strip()
    return bool(stripped) and len(stripped.split()) <= max_words and not _SENTENCE_END.search(stripped)


def drop_heading_lines(shown: str, start: int, end: int) -> int:
    """The answer span's start moved past heading lines that open it ("Title\\n\\nFirst sentence.").

    Returns `start` unchanged when the span is nothing but headings (then `fragment` rejects it)."""
    pos = start
    while True:
        newline = shown.find("\n", pos, end)
        if newline < 0 or not is_heading(shown[pos:newline]):
            return pos
        nxt = newline
        while nxt < end and shown[nxt].isspace():
            nxt += 1
        if nxt >= end:
            return start
        pos = nxt


def fragment(answer: str) -> str | None:
    """Why `answer` is not whole sentences (a heading alone, a cut start or end), or None."""
    text = (answer or "").strip()
    if is_heading(text):
        return f"a heading alone: {text[:80]!r}"
    if not _SENTENCE_START.search(text):
        return f"starts mid-sentence: {text[:60]!r}"
    if not _SENTENCE_END.search(text):
        return f"ends mid-sentence: {text[-60:]!r}"
    return None


def instruction_key(instruction: str) -> str:
    """What two instructions share when they are the same request (case, spacing and punctuation aside)."""
    return " ".join(m.group(0).casefold() for m in _WORD.finditer(instruction or ""))


# ---- does the answer answer the kind of question asked? (answer_type_mismatch)
_YEAR_OR_DATE = re.compile(
    r"\b(?:1\d{3}|20\d{2})s?\b|\b(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December)\b|\b\d{1,2}(?:st|nd|rd|th)? century\b|\bcentur(?:y|ies)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|several|many|few)\b",
    re.IGNORECASE,
)
_CAUSE = re.compile(
    r"\b(?:because|due to|since|as a result|caused|causes|leads? to|led to|so that|in order to|owing to|thanks to|"
    r"reason|allows?|enables?|helps?)\b",
    re.IGNORECASE,
)
_PLACE = re.compile(r"\b(?:in|at|near|from|located|north|south|east|west|between)\s+(?:the\s+)?[A-Z]")
_COPULA = re.compile(r"^[^.;:]{0,200}?\b(?:is|was|are|were|refers to|means|became)\b|\(born\b", re.IGNORECASE)
_DEFINITIONAL = re.compile(
    r"^(?:who|what)\s+(?:is|was|are|were)\s+(?P<x>.+?)\??$|^(?:tell me|what do you know|can you tell me)\s+about\s+"
    r"(?P<y>.+?)[.?]?$|^(?:describe|explain|summari[sz]e)\s+(?P<z>.+?)[.?]?$|^what\s+(?:is|was|are|were)\s+"
    r"(?P<w>.+?)\s+(?:known|famous|best known)\s+for\??$",
    re.IGNORECASE,
)


def _opens_with(words: list[str], wanted: list[str]) -> bool:
    """The sentence is about `wanted`: it starts with it, after at most an article or an `In economics,` lead
    (`Input for process mining is an event log` names it but defines something else)."""
    if not wanted:
        return True
    at = words.index(wanted[0]) if wanted[0] in words else -1
    return at >= 0 and (at == 0 or words[at - 1] in {"the", "a", "an"} or at <= 2 and words[0] == "in")


def question_kind(instruction: str) -> str:
    """What the request asks for: definition, time, number, place, cause, or other (not checked)."""
    text = " ".join((instruction or "").split())
    if _DEFINITIONAL.match(text):
        return "definition"
    lower = text.lower()
    if lower.startswith("when ") or re.match(r"^(?:in )?what (?:year|date|century|decade)\b", lower):
        return "time"
    if re.match(r"^how (?:many|much|long|old|far|big|tall|large|often)\b|^what (?:percentage|number)\b", lower):
        return "number"
    if lower.startswith("where "):
        return "place"
    if lower.startswith("why "):
        return "cause"
    return "other"


def answer_type_problem(instruction: str, answer: str, values: list[str]) -> str | None:
    """Why `answer` cannot answer the kind of question `instruction` asks (question_kind), or None.

    definition ("Who is X?", "Tell me about X"): the answer opens by defining X -- X's words in its first
    sentence before a copula ("X is", "X (born ...) was"); time: a year, month or century; number: a number;
    place: a located, capitalized name; cause: a causal word. Other questions are left to relevance.
    """
    kind = question_kind(instruction)
    text = answer or ""
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    if kind == "definition":
        subject = values[0] if values else ""
        wanted = content_words(subject)
        head = _COPULA.match(re.sub(r"\([^()]*\)", "", first))  # `X (born ...; pronounced ...) is`
        said = [m.group(0).casefold() for m in _WORD.finditer(head.group(0))] if head else []
        if not head or (wanted and not all(w in said for w in wanted)) or not _opens_with(said, wanted):
            return f"asks what {subject!r} is; the answer does not open by defining it: {first[:80]!r}"
        return None
    rule = {"time": _YEAR_OR_DATE, "number": _NUMBER, "place": _PLACE, "cause": _CAUSE}.get(kind)
    if rule is not None and not rule.search(text):
        return f"asks a {kind} question; the answer holds no {kind}: {text[:80]!r}"
    return None


# Words of a request that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = STOPWORDS | frozenset(
    "what who whom whose which when where why how does do did can could would should will shall may might must "
    "tell me give explain describe list name please about you i we us there here than then so such very simple "
    "simply terms common brief briefly short summary detail details example examples exactly really actually main "
    "key important basic general overview thing things".split()
)


def question_words(template: str) -> list[str]:
    """Content words of the template outside its slots: what the request asks about its slot values."""
    literal = parse_template(template).literal_text()
    return [w for w in (m.group(0).casefold() for m in _WORD.finditer(literal)) if w not in QUESTION_WORDS]


def question_coverage(template: str, answer: str) -> float:
    """Share of the template's own content words (question_words) the answer mentions (1.0 when it has none).

    A word is mentioned when an answer word starts with its first five letters (`independence` ~
    `independent`, `gain` ~ `gained`). An answer that names the filled
    entity but not the predicate asked about it answers another question: "When did <fi>a state</fi> gain its
    independence?" answered by a sentence on the United Kingdom declaring war (answer_misses_question)."""
    wanted = question_words(template)
    if not wanted:
        return 1.0
    said = set(content_words(answer))
    return sum(any(a.startswith(w[:5]) for a in said) for w in wanted) / len(wanted)


def any_kind(instruction: str, template: str) -> bool:
    """True for a bare `What is <fi>..</fi>?` (a definition question whose template asks nothing more): it makes
    sense for a value of any kind, so the slot's description need not fit it (`slot_type_mismatch` is waived;
    the answer must still open by defining the value)."""
    return (
        question_kind(instruction) == "definition"
        and not question_words(template)
        and instruction.strip().lower().startswith(("what is", "what are", "what was", "what were", "tell me about"))
    )
