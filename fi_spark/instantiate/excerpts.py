"""Excerpt markers: `<excerpt>first words<...>last words</excerpt>` expanded to the document span they delimit.

The FineInstructions instantiator does not copy sentences: it writes markers naming the first and last
words of a span of the source, and the span is cut out of the source afterwards. A small model can name a
few words far more reliably than it can copy a paragraph, and the expanded answer is verbatim by
construction. This module is that expansion, pure Python (the instantiate stage runs it in a pandas UDF).

Input: the answer text with markers, and the *shown text* -- exactly what the model saw
(:func:`shown_text`, also used to build the prompt, so a span can never come from a part the model was
not shown). Output: :class:`Expansion` with the expanded answer, the spans, the share of the expanded
answer's characters that came from excerpts, or one problem with a detail that carries the marker.

Rules, in order:

1. Marker syntax. `<excerpt>A<...>B</excerpt>` names a span that starts with A and ends with B;
   `<excerpt>A</excerpt>` (no `<...>`) names the span that is A itself. Tags are matched
   case-insensitively; `<…>` (one ellipsis character) is accepted for `<...>`. An `<excerpt>` opened
   inside another, a stray `</excerpt>`, an unclosed marker or an empty side -> ``excerpt_malformed``.
2. A span is any document range that starts with an occurrence of A and ends with an occurrence of B
   (B ending after A starts and not before A ends; the two may overlap for a very short span). An
   occurrence must start and end on word boundaries, so `cat` never matches inside `concatenate`
   (CJK, kana and hangul characters are words of their own, as in fi_spark.instantiate.grounding).
3. Exact match first: when the exact words occur, the number of spans decides -- one is expanded,
   more than one -> ``excerpt_ambiguous`` (the marker does not identify one span; the recipe rejects it).
4. Only when the exact words do not occur at all, a *tolerant* match: both sides are compared after
   Unicode NFKC, case folding, every whitespace run as one space, and typographic quotes and dashes
   as their ASCII forms (’ -> ', “ -> ", – -> -). Why these and nothing more: they are the differences
   a model introduces when it retypes words it has just read (its tokenizer's view of curly quotes,
   a line break it writes as a space, a capital at the start of a quote), and none of them changes
   which words are meant. Spans found this way are mapped back to the original characters, so the
   expanded answer is still the document's own text. Dropped or changed words are never tolerated.
5. No span at all -> ``excerpt_unresolved`` (the detail says when A and B do occur but B only before A).
6. Two markers whose spans overlap in the document -> ``excerpt_overlap``: the expanded answer would
   repeat the document's text.

`excerpt_share` = characters of the expanded answer that came from spans / characters of the expanded
answer (both after stripping the answer's outer whitespace); None when the answer has no marker.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from fi_spark.prompting.messages import cut_text
from fi_spark.text.chunking import sentence_starts
from fi_spark.text.words import CJK

REASONS = ("excerpt_malformed", "excerpt_ambiguous", "excerpt_unresolved", "excerpt_overlap")
OPEN, GAP, CLOSE = "<excerpt>", "<...>", "</excerpt>"

_TAG = re.compile(r"<\s*(/?)\s*excerpt\s*>", re.IGNORECASE)
_GAP = re.compile(r"<\s*(?:\.\.\.|…)\s*>")
_FOLD = {"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-", "‐": "-"}
_CJK_RE = re.compile(f"[{CJK}]")
MAX_DETAIL = 200


def shown_text(source_text: str | None, max_chars: int) -> str:
    """The text the model is shown for `source_text`: the prompt builders and every check use this one cut."""
    return cut_text(source_text or "", max_chars)


def sentence_spans(shown: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `shown` (fi_spark.text.chunking's split), outer whitespace excluded.

    Sentence k (1-based) of the numbered document (`answer_style: sentences`) is `shown[start:end]` of
    entry k-1, so a chosen sentence range maps back to the exact characters the model was shown.
    Whitespace-only pieces (blank lines) are not sentences.
    """
    starts = sentence_starts(shown)
    spans = []
    for i, start in enumerate(starts):
        piece = shown[start : starts[i + 1] if i + 1 < len(starts) else len(shown)]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
    return spans


def number_sentences(shown: str, spans: list[tuple[int, int]] | None = None) -> str:
    """`shown` with `[k] ` written before sentence k (1-based); the text between sentences is kept as is."""
    spans = sentence_spans(shown) if spans is None else spans
    out, pos = [], 0
    for k, (start, end) in enumerate(spans, 1):
        out.append(f"{shown[pos:start]}[{k}] {shown[start:end]}")
        pos = end
    out.append(shown[pos:])
    return "".join(out)


@dataclass(frozen=True)
class Span:
    """One resolved marker: where it is in the answer, and the document range it expands to."""

    marker: str
    doc_start: int
    doc_end: int
    tolerant: bool = False  # found only by the tolerant match (rule 4)


@dataclass
class Expansion:
    """The answer with every marker replaced by its span, or the first problem met."""

    text: str | None = None
    spans: list[Span] = field(default_factory=list)
    excerpt_share: float | None = None
    reason: str | None = None
    detail: str | None = None


def has_markers(answer: str | None) -> bool:
    return bool(answer) and _TAG.search(answer or "") is not None


def expand(answer: str, shown: str) -> Expansion:
    """Expand every marker of `answer` against `shown` (the text the model saw); see the module rules."""
    pieces: list[tuple[str, str]] = []  # ("text", connector) | ("marker", inner text)
    pos, open_at = 0, -1
    for match in _TAG.finditer(answer):
        closing = match.group(1) == "/"
        if not closing:
            if open_at >= 0:
                return _fail("excerpt_malformed", f"<excerpt> opened inside another: {answer[open_at : match.end()]}")
            pieces.append(("text", answer[pos : match.start()]))
            open_at, pos = match.start(), match.end()
        else:
            if open_at < 0:
                return _fail(
                    "excerpt_malformed",
                    f"</excerpt> without <excerpt>: {answer[max(0, match.start() - 60) : match.end()]}",
                )
            pieces.append(("marker", answer[pos : match.start()]))
            open_at, pos = -1, match.end()
    if open_at >= 0:
        return _fail("excerpt_malformed", f"unclosed <excerpt>: {answer[open_at:]}")
    pieces.append(("text", answer[pos:]))

    folded: _Folded | None = None
    out: list[str] = []
    spans: list[Span] = []
    excerpt_chars = 0
    for kind, value in pieces:
        if kind == "text":
            out.append(value)
            continue
        marker = f"{OPEN}{value}{CLOSE}"
        parts = _GAP.split(value)
        if len(parts) > 2 or not all(p.strip() for p in parts):
            return _fail("excerpt_malformed", f"expected <excerpt>first words<...>last words</excerpt>: {marker}")
        first, last, gap = parts[0].strip(), parts[-1].strip(), len(parts) == 2
        found = _spans(shown, first, last, gap)
        tolerant = False
        if not found.starts or not found.ends:
            folded = folded or _Folded(shown)
            found = _spans(folded.text, _fold(first), _fold(last), gap)
            found.spans = [folded.original(s, e) for s, e in found.spans]
            tolerant = True
        if len(found.spans) > 1:
            return _fail("excerpt_ambiguous", f"{len(found.spans)} spans match {marker}")
        if not found.spans:
            why = "start words not in the text" if not found.starts else "end words not in the text"
            if found.starts and found.ends:
                why = "the end words occur only before the start words"
            return _fail("excerpt_unresolved", f"{why}: {marker}")
        start, end = found.spans[0]
        for other in spans:
            if start < other.doc_end and other.doc_start < end:
                return _fail("excerpt_overlap", f"{marker} overlaps {other.marker}")
        spans.append(Span(marker, start, end, tolerant))
        out.append(shown[start:end])
        excerpt_chars += end - start
    text = "".join(out)
    stripped = text.strip()
    share = None
    if spans:  # excerpts are never stripped (they are inside the text), so the share stays <= 1
        share = min(1.0, excerpt_chars / len(stripped)) if stripped else 0.0
    return Expansion(text=stripped, spans=spans, excerpt_share=share)


def render_parts(parts: list[dict[str, str]]) -> str:
    """Parts of the by-construction schema ({lead, first, last}) written as one marker string."""
    out = []
    for part in parts:
        lead = str(part.get("lead") or "").strip()
        first, last = str(part.get("first") or "").strip(), str(part.get("last") or "").strip()
        body = first if not last or last == first else f"{first}{GAP}{last}"
        out.append(f"{lead} {OPEN}{body}{CLOSE}".strip())
    return " ".join(out)


# --------------------------------------------------------------------------- matching
def _occurrences(text: str, words: str) -> list[int]:
    """Start offsets of `words` in `text` that begin and end on word boundaries."""
    if not words:
        return []
    found, pos = [], text.find(words)
    while pos >= 0:
        end = pos + len(words)
        left_ok = pos == 0 or not (_wordy(text[pos - 1]) and _wordy(words[0]))
        right_ok = end == len(text) or not (_wordy(text[end]) and _wordy(words[-1]))
        if left_ok and right_ok:
            found.append(pos)
        pos = text.find(words, pos + 1)
    return found


@dataclass
class _Found:
    starts: list[int]
    ends: list[int]
    spans: list[tuple[int, int]]


def _spans(text: str, first: str, last: str, gap: bool) -> _Found:
    """Occurrences of both sides and every (start, end) span they delimit (rule 2)."""
    starts = _occurrences(text, first)
    if not gap:
        return _Found(starts, starts, [(s, s + len(first)) for s in starts])
    end_starts = _occurrences(text, last)
    spans = [
        (s, e + len(last))
        for s in starts
        for e in end_starts
        if e >= s and e + len(last) >= s + len(first) and (e > s or first != last)
    ]
    return _Found(starts, end_starts, spans)


def _wordy(ch: str) -> bool:
    """A character that continues a word; CJK, kana and hangul do not (those scripts have no spaces)."""
    return (ch.isalnum() or ch == "_") and not _CJK_RE.match(ch)


def _fold_char(ch: str) -> str:
    ch = _FOLD.get(ch, ch)
    return " " if ch.isspace() else unicodedata.normalize("NFKC", ch).casefold()


def _fold(text: str) -> str:
    return re.sub(r" +", " ", "".join(_fold_char(c) for c in text)).strip()


class _Folded:
    """The shown text folded for the tolerant match, with each folded character's original offset."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for i, ch in enumerate(text):
            for out in _fold_char(ch):
                if out == " " and chars and chars[-1] == " ":
                    continue  # a whitespace run is one space
                chars.append(out)
                origin.append(i)
        self.text = "".join(chars)
        self._origin = origin

    def original(self, start: int, end: int) -> tuple[int, int]:
        """Folded [start, end) -> original [start, end): from the first char's source to past the last's."""
        return self._origin[start], self._origin[end - 1] + 1


def _fail(reason: str, detail: str) -> Expansion:
    return Expansion(reason=reason, detail=detail[:MAX_DETAIL])
