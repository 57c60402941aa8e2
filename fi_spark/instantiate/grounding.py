"""Grounding: how much of an answer is copied verbatim from its source document.

The FineInstructions recipe asks the instantiator to excerpt at least 80% of each answer from the
document. This module turns that into one number, precise enough to test and cheap enough to run
on every pair.

Definition (``excerpt coverage``)
---------------------------------
1. Both texts are tokenized the same way by :func:`fi_spark.text.words.word_tokens`: Unicode NFKC, case-folded, tokens
   are runs of letters/digits (``[^\\W_]+``), and every CJK / kana / hangul character is a token on
   its own (those scripts have no spaces). Punctuation, markup and whitespace are not tokens, so
   ``"Paris, France."`` and ``"Paris France"`` are the same two tokens.
2. An answer token is *covered* when it lies inside some window of ``min_span`` (N) consecutive
   answer tokens that also occurs as N consecutive tokens of the document.
3. ``coverage = covered answer tokens / answer tokens``, in [0, 1].

Edge rules: an answer with no tokens has coverage 0.0 (nothing is grounded); an answer shorter than
N tokens is covered in full when the whole of it occurs contiguously in the document, else 0.0
(a two-word answer cannot contain a five-word excerpt, but it can still be one).

Why this measure: requiring N consecutive tokens (default 5) means single common words and short
stock phrases do not count as copying, while light rewording at the seams (a changed connective, a
dropped comma) costs only the tokens it touches. It is the token-level analogue of the longest-common-
substring tests used for memorization and contamination checks, but summed over all excerpts.

Algorithm: the document's N-grams go into a hash set once (O(|doc|)); each answer window is one set
lookup, and covered tokens are counted with a sweep that remembers how far coverage already reaches,
so the whole check is O(|doc| + |answer|) in time. Tokens are interned to ints first, so set members
are small int tuples. :class:`DocumentNgrams` keeps the set so many answers from one document
(one document matches many templates) pay for it once.

Pure Python, no Spark: the instantiate stage calls it inside a pandas UDF.
"""

from __future__ import annotations

from dataclasses import dataclass

from fi_spark.text.words import word_tokens

DEFAULT_MIN_SPAN = 5


@dataclass(frozen=True)
class Grounding:
    """The measured excerpt coverage of one answer."""

    coverage: float  # covered_tokens / answer_tokens, 0.0 when the answer has no tokens
    answer_tokens: int
    covered_tokens: int
    longest_run: int  # longest stretch of consecutive covered answer tokens


class DocumentNgrams:
    """A document's token N-grams, built once, against which many answers can be measured."""

    def __init__(self, document: str, min_span: int = DEFAULT_MIN_SPAN) -> None:
        if min_span < 1:
            raise ValueError(f"min_span must be >= 1, got {min_span}")
        self.min_span = min_span
        self._vocab: dict[str, int] = {}
        self._ids = [self._vocab.setdefault(tok, len(self._vocab)) for tok in word_tokens(document)]
        self._grams = self._ngrams(min_span)

    def _ngrams(self, n: int) -> set[tuple[int, ...]]:
        ids = self._ids
        return set(zip(*(ids[i:] for i in range(n))))  # all windows of n; zip is ~3x a tuple-slice loop

    def measure(self, answer: str) -> Grounding:
        """Excerpt coverage of `answer` against this document."""
        # Tokens absent from the document get -1: they can never be part of a matching window.
        ids = [self._vocab.get(tok, -1) for tok in word_tokens(answer)]
        total = len(ids)
        if total == 0:
            return Grounding(0.0, 0, 0, 0)
        if total < self.min_span:
            found = -1 not in ids and tuple(ids) in self._ngrams(total)
            return Grounding(1.0 if found else 0.0, total, total if found else 0, total if found else 0)

        n = self.min_span
        covered = 0
        reach = 0  # answer tokens [.., reach) are already counted as covered
        run_start = -1
        longest = 0
        for start in range(total - n + 1):
            if tuple(ids[start : start + n]) not in self._grams:
                continue
            covered += start + n - max(reach, start)
            if start > reach or run_start < 0:  # a gap before this window: a new run begins
                run_start = start
            reach = start + n
            longest = max(longest, reach - run_start)
        return Grounding(covered / total, total, covered, longest)


def measure_grounding(answer: str, document: str, min_span: int = DEFAULT_MIN_SPAN) -> Grounding:
    """Excerpt coverage of `answer` in `document` with windows of `min_span` tokens (one-off form)."""
    return DocumentNgrams(document, min_span).measure(answer)
