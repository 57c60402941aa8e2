"""Parse `<fi>slot description</fi>` tags in instruction templates, tolerating malformed input.

A template is plain text in which every concrete part of the original query became a slot:
`How do I <fi>perform a task</fi> in <fi>a software tool</fi>?`. LLM output is often not that
tidy, so the parser never raises: it returns the slots it could read plus a list of problems
(unclosed, stray, nested or malformed tags, empty slots) that validation turns into reject
reasons. Tags are matched case-insensitively and with stray spaces (`< FI >`), because such
variants are unambiguous; `canonical()` rewrites them to the exact `<fi>...</fi>` form.

Pure Python (no pyspark): used inside Spark UDFs and in unit tests alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SLOT_OPEN = "<fi>"
SLOT_CLOSE = "</fi>"

# A well-formed tag, allowing case and whitespace variants: <fi>, </fi>, < FI >, </ fi>.
_TAG = re.compile(r"<\s*(/?)\s*fi\s*>", re.IGNORECASE)
# Anything still looking like a fi tag once the well-formed ones are removed: `<fi`, `fi>`, `</fi `, `<fi/>`.
_TAG_FRAGMENT = re.compile(r"<\s*/?\s*fi\b|\bfi\s*/?\s*>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w<>/]+", re.UNICODE)


@dataclass(frozen=True)
class Slot:
    """One slot: its description and the span of the whole `<fi>...</fi>` element in the text."""

    description: str
    start: int
    end: int


@dataclass(frozen=True)
class TagProblem:
    """A malformed spot. `kind` is one of PROBLEM_KINDS; `position` is a character offset."""

    kind: str
    position: int
    detail: str = ""


PROBLEM_KINDS = {
    "unclosed_slot": "<fi> opened and never closed",
    "stray_close": "</fi> without a matching <fi>",
    "nested_slot": "<fi> opened inside another slot",
    "empty_slot": "a slot with no description",
    "malformed_tag": "text that looks like a broken fi tag, e.g. '<fi' or 'fi>'",
}


@dataclass(frozen=True)
class ParsedTemplate:
    text: str
    slots: tuple[Slot, ...]
    problems: tuple[TagProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every tag is balanced and well formed (it may still have zero slots)."""
        return not self.problems

    @property
    def descriptions(self) -> list[str]:
        return [s.description for s in self.slots]

    def literal_text(self, placeholder: str = " ") -> str:
        """The text outside slots, each slot replaced by `placeholder` (what must not hold query specifics)."""
        parts, pos = [], 0
        for slot in self.slots:
            parts.append(self.text[pos : slot.start])
            parts.append(placeholder)
            pos = slot.end
        parts.append(self.text[pos:])
        return "".join(parts)

    def canonical(self) -> str:
        """The template with every slot written exactly `<fi>description</fi>` and whitespace collapsed."""
        parts, pos = [], 0
        for slot in self.slots:
            parts.append(self.text[pos : slot.start])
            parts.append(f"{SLOT_OPEN}{slot.description}{SLOT_CLOSE}")
            pos = slot.end
        parts.append(self.text[pos:])
        return _collapse("".join(parts))

    def skeleton(self) -> str:
        """Near-duplicate key: lower-cased literal words with every slot as `<fi>`, punctuation dropped.

        Two templates that differ only in slot wording, case, punctuation or spacing share a
        skeleton (`What is <fi>a city</fi>'s population?` ~ `what is <fi>name of a city</fi> s population`),
        so merging on it removes the near-duplicates a genericizer produces for paraphrased queries.
        """
        words = _NON_WORD.sub(" ", self.literal_text(placeholder=f" {SLOT_OPEN} ").lower())
        return _collapse(words)


def parse_template(text: str | None) -> ParsedTemplate:
    """Read the slots of `text`; never raises. None and non-strings parse as an empty template."""
    if not isinstance(text, str):
        return ParsedTemplate("", ())
    slots: list[Slot] = []
    problems: list[TagProblem] = []
    open_match: re.Match[str] | None = None
    for match in _TAG.finditer(text):
        is_close = match.group(1) == "/"
        if not is_close:
            if open_match is not None:
                problems.append(TagProblem("nested_slot", match.start(), _excerpt(text, match.start())))
                continue
            open_match = match
            continue
        if open_match is None:
            problems.append(TagProblem("stray_close", match.start(), _excerpt(text, match.start())))
            continue
        description = _collapse(text[open_match.end() : match.start()])
        if not description:
            problems.append(TagProblem("empty_slot", open_match.start(), _excerpt(text, open_match.start())))
        slots.append(Slot(description, open_match.start(), match.end()))
        open_match = None
    if open_match is not None:
        problems.append(TagProblem("unclosed_slot", open_match.start(), _excerpt(text, open_match.start())))
    residue = _TAG.sub(lambda m: " " * len(m.group(0)), text)
    for frag in _TAG_FRAGMENT.finditer(residue):
        problems.append(TagProblem("malformed_tag", frag.start(), _excerpt(text, frag.start())))
    problems.sort(key=lambda p: p.position)
    return ParsedTemplate(text, tuple(slots), tuple(problems))


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _excerpt(text: str, pos: int, width: int = 30) -> str:
    return text[max(0, pos - 5) : pos + width]
