"""Token-aware chunking that prefers sentence boundaries.

A document is tokenized once (character offsets included). Chunks hold at most ``max_tokens`` tokens;
a chunk ends at the last sentence start that fits, unless a single sentence is longer than a chunk,
where it is cut at a token boundary. Consecutive chunks share about ``overlap`` tokens, and the next
chunk starts at a sentence start inside the overlap window when there is one. Each chunk is the exact
slice ``text[char_start:char_end]`` of the (normalized) document, so spans can be shown in context.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
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


def chunk_text(text: str, tokenizer: Any, max_tokens: int, overlap: int) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (see module docstring).

    ``tokenizer`` is a Hugging Face ``tokenizers.Tokenizer`` (anything whose ``encode(text,
    add_special_tokens=False)`` returns an object with character ``offsets``).
    """
    if not text:
        return []
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if not offsets:
        return []
    ranges = chunk_offsets(offsets, sentence_starts(text), max_tokens, overlap)
    return [
        Chunk(ordinal=i, char_start=offsets[a][0], char_end=offsets[b - 1][1], n_tokens=b - a)
        for i, (a, b) in enumerate(ranges)
    ]
