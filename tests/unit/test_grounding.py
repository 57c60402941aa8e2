"""Excerpt-coverage grounding measure on hand-made cases (fi_spark.instantiate.grounding)."""

from __future__ import annotations

import random

import pytest

from fi_spark.instantiate.grounding import DocumentNgrams, Grounding, measure_grounding
from fi_spark.text.words import word_tokens

DOC = (
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. "
    "It was designed by the engineering firm of Gustave Eiffel and is 330 metres tall."
)


def test_tokens_ignore_case_punctuation_and_width():
    """Case, punctuation and full-width forms do not change tokens; CJK splits per character."""
    assert word_tokens("Paris, FRANCE. ") == ["paris", "france"]
    assert word_tokens("Ｐａｒｉｓ") == ["paris"]
    assert word_tokens("snake_case x") == ["snake", "case", "x"]
    assert word_tokens("東京は大きい") == ["東", "京", "は", "大", "き", "い"]
    assert word_tokens("") == []


def test_verbatim_answer_is_fully_covered():
    """An answer that is one excerpt of the document scores 1.0."""
    g = measure_grounding("It was designed by the engineering firm of Gustave Eiffel.", DOC)
    assert g == Grounding(coverage=1.0, answer_tokens=10, covered_tokens=10, longest_run=10)


def test_invented_answer_scores_zero():
    """An answer sharing only single words with the document scores 0.0."""
    g = measure_grounding("Paris is a tower of engineering and design in France.", DOC)
    assert g.coverage == 0.0
    assert g.covered_tokens == 0


def test_partial_copy_counts_exact_tokens():
    """6 copied tokens + 4 invented ones = 0.6, and the copied run length is reported."""
    answer = "completed in 1889 for the World's according to my old notes"
    # tokens: completed in 1889 for the world s | according to my old notes  -> 7 copied of 12
    g = measure_grounding(answer, DOC)
    assert (g.answer_tokens, g.covered_tokens, g.longest_run) == (12, 7, 7)
    assert g.coverage == pytest.approx(7 / 12)


def test_window_shorter_than_min_span_does_not_count():
    """A 4-token copied phrase is not an excerpt when min_span is 5, but is with min_span 4."""
    answer = "designed by the engineering people long ago"
    assert measure_grounding(answer, DOC, min_span=5).covered_tokens == 0
    assert measure_grounding(answer, DOC, min_span=4).covered_tokens == 4


def test_stitched_excerpts_from_two_places_are_both_counted():
    """Two excerpts from different sentences joined together are both covered; the gap is not."""
    answer = "The Eiffel Tower was completed in 1889, honestly, and is 330 metres tall."
    g = measure_grounding(answer, DOC)
    # the eiffel tower was completed in 1889 (7) | honestly (1) | and is 330 metres tall (5)
    assert (g.answer_tokens, g.covered_tokens, g.longest_run) == (13, 12, 7)


def test_short_answers_count_only_when_whole_answer_is_in_document():
    """Answers under min_span tokens are 1.0 if contiguous in the document, else 0.0."""
    assert measure_grounding("330 metres", DOC).coverage == 1.0
    assert measure_grounding("Gustave Eiffel!", DOC).coverage == 1.0
    assert measure_grounding("metres 330", DOC).coverage == 0.0
    assert measure_grounding("Berlin", DOC).coverage == 0.0


def test_empty_inputs():
    """An empty answer is ungrounded; an empty document grounds nothing."""
    assert measure_grounding("", DOC) == Grounding(0.0, 0, 0, 0)
    assert measure_grounding("...", DOC).coverage == 0.0
    assert measure_grounding("The Eiffel Tower was completed", "").coverage == 0.0


def test_repeated_windows_do_not_double_count():
    """Overlapping matched windows count each covered token once."""
    doc = "a b c d e f g h"
    g = measure_grounding("a b c d e f g h", doc, min_span=3)
    assert (g.covered_tokens, g.answer_tokens) == (8, 8)


def test_one_document_measures_many_answers():
    """DocumentNgrams gives the same results as the one-off function."""
    ngrams = DocumentNgrams(DOC)
    for answer in ("It was designed by the engineering firm", "nothing here at all really", "330 metres"):
        assert ngrams.measure(answer) == measure_grounding(answer, DOC)


def test_matches_brute_force_on_random_texts():
    """The sweep agrees with a direct per-token definition on random token sequences."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(6)]
    for _ in range(300):
        doc = [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        ans = [rng.choice(vocab) for _ in range(rng.randint(5, 25))]
        n = rng.randint(1, 5)
        grams = {tuple(doc[i : i + n]) for i in range(len(doc) - n + 1)}
        covered = [False] * len(ans)
        for j in range(len(ans) - n + 1):
            if tuple(ans[j : j + n]) in grams:
                for k in range(j, j + n):
                    covered[k] = True
        g = measure_grounding(" ".join(ans), " ".join(doc), min_span=n)
        assert g.covered_tokens == sum(covered)
        longest, run = 0, 0
        for c in covered:
            run = run + 1 if c else 0
            longest = max(longest, run)
        assert g.longest_run == longest


def test_min_span_must_be_positive():
    """A zero window is a configuration error, named as such."""
    with pytest.raises(ValueError, match="min_span"):
        DocumentNgrams(DOC, min_span=0)


def test_long_document_partial_copy():
    """A 20k-token document: 300 copied tokens + 100 novel ones give coverage 0.75 (speed is benchmarked, not timed)."""
    rng = random.Random(1)
    words = [f"word{rng.randint(0, 5000)}" for _ in range(20_000)]
    doc = " ".join(words)
    novel = " ".join(f"novel{i}" for i in range(100))
    assert measure_grounding(" ".join(words[1000:1300]), doc).coverage == 1.0
    g = measure_grounding(" ".join(words[1000:1300]) + " " + novel, doc)
    assert g.coverage == 0.75
