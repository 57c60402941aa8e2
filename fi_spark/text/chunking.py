"""Token-aware chunking that prefers sentence boundaries.

A document is tokenized once (character offsets included). Chunks hold at most ``max_tokens`` tokens;
a chunk ends at the last sentence start that fits, unless a single sentence is longer than a chunk,
where it is cut at a token boundary. Consecutive chunks share about ``overlap`` tokens, and the next
chunk starts at a sentence start inside the overlap window when there is one. Each chunk is the exact
slice ``text[char_start:char_end]`` of the (normalized) document, so spans can be shown in context.

Sentence starts come from ``sentence_starts`` (the regex below, the default) or from outside: with
``prepare.sentence_splitter=sparknlp`` the stage hands in Spark NLP's sentence begin offsets, which
count UTF-16 code units like every JVM string (``utf16_to_str_offsets`` turns them into str indices).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# A sentence starts after . ! ? (optionally followed by closing quotes/brackets) and whitespace,
# or after a line break (headings, list items, paragraphs).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n+")


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    char_start: int
    char_end: int
    n_tokens: int


def sentence_starts(text: str) -> list[int]:
    """Character positions where sentences start (always includes 0 for non-empty text)."""
    starts = [0] if text else []
    starts.extend(m.end() for m in _SENTENCE_BREAK.finditer(text) if m.end() < len(text))
    return starts


def utf16_to_str_offsets(text: str, offsets: Iterable[int]) -> list[int]:
    """Map offsets counted in UTF-16 code units (JVM strings) to indices of the Python str ``text``.

    They differ only after a character outside the Basic Multilingual Plane (emoji, some CJK), which
    is two code units in UTF-16 and one str index; an offset inside such a pair maps to its character.
    """
    offsets = list(offsets)
    if text.isascii() or all(ord(ch) < 0x10000 for ch in text):
        return offsets
    index_of: list[int] = []  # index_of[u] = str index of the character holding UTF-16 unit u
    for i, ch in enumerate(text):
        index_of.extend((i, i) if ord(ch) >= 0x10000 else (i,))
    index_of.append(len(text))
    return [index_of[min(max(u, 0), len(index_of) - 1)] for u in offsets]


def clean_starts(starts: Iterable[int], length: int) -> list[int]:
    """Sorted, distinct sentence starts inside ``[0, length)``, 0 included (what ``chunk_offsets`` expects)."""
    if length <= 0:
        return []
    return sorted({0, *(s for s in starts if 0 <= s < length)})


def chunk_offsets(
    offsets: Sequence[tuple[int, int]], starts: list[int], max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Token index ranges [start, end) of each chunk, given token char offsets and sentence starts."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens}, {overlap}")
    n = len(offsets)
    # sentence_of[i]: index of the sentence that token i belongs to; a token opens a sentence when it differs.
    sentence_of = [bisect.bisect_right(starts, offsets[i][0]) - 1 for i in range(n)]
    opens = [i == 0 or sentence_of[i] != sentence_of[i - 1] for i in range(n)]
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + max_tokens, n)
        if end < n:
            cut = next((b for b in range(end, start, -1) if opens[b]), None)
            if cut is not None and cut > start:
                end = cut
        ranges.append((start, end))
        if end >= n:
            break
        window_lo = max(end - overlap, start + 1)
        aligned = next((b for b in range(window_lo, end) if opens[b]), None) if overlap else None
        start = aligned if aligned is not None else (max(end - overlap, start + 1) if overlap else end)
    return ranges


def chunk_text(
    text: str, tokenizer: Any, max_tokens: int, overlap: int, starts: Iterable[int] | None = None
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (see module docstring).

    ``tokenizer`` is a Hugging Face ``tokenizers.Tokenizer`` (anything whose ``encode(text,
    add_special_tokens=False)`` returns an object with character ``offsets``). ``starts``: sentence
    start indices into ``text`` from another splitter; None uses ``sentence_starts(text)``.
    """
    if not text:
        return []
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if not offsets:
        return []
    found = sentence_starts(text) if starts is None else clean_starts(starts, len(text))
    ranges = chunk_offsets(offsets, found, max_tokens, overlap)
    return [
        Chunk(ordinal=i, char_start=offsets[a][0], char_end=offsets[b - 1][1], n_tokens=b - a)
        for i, (a, b) in enumerate(ranges)
    ]
