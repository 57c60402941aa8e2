"""Decontamination: find generated pairs that share a long n-gram with an evaluation set.

A model trained on our pairs must not have seen the benchmarks it is scored on, so the instantiate
stage drops a pair (reason ``contaminated``) when its instruction or answer contains any token n-gram
of length ``n`` (default 13, the GPT-3 / PaLM choice) that also occurs in an evaluation item.
Tokens are those of :func:`fi_spark.instantiate.grounding.word_tokens` (case, punctuation and
whitespace ignored), so reformatting does not hide an overlap.

Evaluation items shorter than ``n`` tokens (many QA benchmarks are one short question) would never
match a 13-gram; an item with ``min_tokens <= len < n`` tokens therefore contributes its whole token
sequence instead, and a pair matches it if the pair contains that sequence. Items under
``min_tokens`` tokens (default 8) are skipped: "what is the capital of france" is not distinctive
enough to call a pair contaminated.

Representation: each token gets a deterministic 64-bit xxhash; an n-gram's hash is a polynomial
combination of its token hashes (mod 2**64, seeded with its length), computed for all windows of a
text with ``n`` vectorised numpy steps. The evaluation side is one sorted ``uint64`` array (8 bytes
per distinct n-gram: 10M n-grams = 80 MB) with a parallel array naming each n-gram's source, so a
lookup is one ``searchsorted``. The index is built once on the driver from the evaluation files
(evaluation-sized, not data-sized) and shipped to the workers with the UDF. Hash collisions are
possible in principle (64-bit) and would show up as a reject whose detail quotes the n-gram, which a
person can check.

Why not a library: datatrove / text-dedup ship decontamination as whole pipelines over their own
document formats; the core here is a set membership test that is shorter to own than to adapt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import xxhash

from fi_spark.text.words import word_tokens

DEFAULT_NGRAM = 13
DEFAULT_MIN_TOKENS = 8
_P = np.uint64(0x100000001B3)  # FNV prime: odd, so the multiplication is a bijection mod 2**64


def token_hashes(tokens: list[str]) -> np.ndarray:
    """Deterministic 64-bit hash per token (the same in every process, unlike `hash()`)."""
    return np.fromiter((xxhash.xxh3_64_intdigest(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens))


def gram_hashes(hashes: np.ndarray, length: int) -> np.ndarray:
    """Hashes of every window of `length` consecutive tokens; empty when the text is shorter."""
    count = len(hashes) - length + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.full(count, np.uint64(length), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(length):
            out = out * _P + hashes[k : k + count]
    return out


@dataclass(frozen=True)
class Overlap:
    """The first evaluation n-gram found in a text."""

    ngram: str  # the overlapping tokens, space-joined, for a person to check
    source: str  # which evaluation set (its path or name)


class EvalNgramIndex:
    """All n-grams of a set of evaluation items, for fast "does this text overlap?" checks."""

    def __init__(self, hashes: np.ndarray, source_ids: np.ndarray, sources: list[str], lengths: list[int], n: int):
        self._hashes = hashes
        self._source_ids = source_ids
        self.sources = sources
        self.lengths = lengths  # n-gram lengths present: n, plus whole-item lengths of short items
        self.n = n

    @classmethod
    def build(
        cls, items: Iterable[tuple[str, str]], n: int = DEFAULT_NGRAM, min_tokens: int = DEFAULT_MIN_TOKENS
    ) -> EvalNgramIndex:
        """Index `(source, text)` items; see the module docstring for how short items count."""
        if n < 1 or min_tokens < 1:
            raise ValueError(f"decontam n-gram ({n}) and min_tokens ({min_tokens}) must be >= 1")
        sources: list[str] = []
        source_index: dict[str, int] = {}
        chunks: list[np.ndarray] = []
        chunk_sources: list[np.ndarray] = []
        lengths: set[int] = set()
        for source, text in items:
            tokens = word_tokens(text)
            if len(tokens) < min(min_tokens, n):
                continue
            length = min(n, len(tokens))
            grams = gram_hashes(token_hashes(tokens), length)
            sid = source_index.setdefault(source, len(source_index))
            if sid == len(sources):
                sources.append(source)
            lengths.add(length)
            chunks.append(grams)
            chunk_sources.append(np.full(len(grams), sid, dtype=np.uint32))
        if not chunks:
            return cls(np.empty(0, np.uint64), np.empty(0, np.uint32), sources, [], n)
        hashes = np.concatenate(chunks)
        ids = np.concatenate(chunk_sources)
        order = np.argsort(hashes, kind="stable")  # stable: a shared n-gram is credited to the first source
        hashes, ids = hashes[order], ids[order]
        keep = np.ones(len(hashes), dtype=bool)
        keep[1:] = hashes[1:] != hashes[:-1]
        return cls(hashes[keep], ids[keep], sources, sorted(lengths), n)

    def __len__(self) -> int:
        return len(self._hashes)

    def find(self, text: str) -> Overlap | None:
        """The first evaluation n-gram contained in `text` (earliest position, longest length), or None."""
        if not len(self._hashes):
            return None
        tokens = word_tokens(text)
        hashes = token_hashes(tokens)
        best: tuple[int, int, int] | None = None  # (position, -length, source id)
        for length in self.lengths:
            grams = gram_hashes(hashes, length)
            if not len(grams):
                continue
            pos = np.searchsorted(self._hashes, grams)
            pos[pos == len(self._hashes)] = 0
            hits = np.flatnonzero(self._hashes[pos] == grams)
            if len(hits):
                first = int(hits[0])
                candidate = (first, -length, int(self._source_ids[pos[first]]))
                best = candidate if best is None else min(best, candidate)
        if best is None:
            return None
        start, neg_len, sid = best
        return Overlap(" ".join(tokens[start : start - neg_len]), self.sources[sid])
