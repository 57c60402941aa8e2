"""Long n-gram overlap with evaluation sets (fi_spark.decontam.overlap)."""

from __future__ import annotations

import numpy as np
import pytest

from fi_spark.decontam.overlap import EvalNgramIndex, Overlap, gram_hashes, token_hashes

EVAL = [
    ("mmlu.jsonl", "Which of the following best describes the role of the mitochondria in eukaryotic cells today"),
    ("trivia.jsonl", "Who painted the ceiling of the Sistine Chapel in Rome"),  # 10 tokens: whole-item gram
    ("trivia.jsonl", "Capital of France?"),  # 3 tokens: too short to count
]


@pytest.fixture(scope="module")
def index() -> EvalNgramIndex:
    return EvalNgramIndex.build(EVAL, n=13, min_tokens=8)


def test_long_overlap_is_found_with_source_and_ngram(index):
    """The first 13-gram copied from an eval item (case, punctuation changed) is reported with its source."""
    text = "Question: which of the following BEST describes the role of the mitochondria, in eukaryotic cells?"
    found = index.find(text)
    assert found == Overlap(
        "which of the following best describes the role of the mitochondria in eukaryotic", "mmlu.jsonl"
    )


def test_shorter_overlap_is_not_contamination(index):
    """Sharing 12 consecutive tokens of a long item is below the 13-gram bar."""
    twelve = "the following best describes the role of the mitochondria in eukaryotic cells"
    assert index.find(twelve + " and more") is None
    assert index.find(twelve + " today").ngram == twelve + " today"


def test_short_eval_item_matches_as_a_whole(index):
    """An eval item of 8..12 tokens matches when the pair contains all of it, in order."""
    found = index.find("Trivia night: who painted the ceiling of the Sistine Chapel in Rome? Michelangelo.")
    assert found == Overlap("who painted the ceiling of the sistine chapel in rome", "trivia.jsonl")
    assert index.find("who painted the ceiling of the Sistine Chapel") is None


def test_very_short_eval_items_are_ignored(index):
    """Items under min_tokens never flag a pair."""
    assert index.find("The capital of France is Paris.") is None
    assert index.sources == ["mmlu.jsonl", "trivia.jsonl"]
    assert index.lengths == [10, 13]


def test_clean_text_and_empty_index():
    """Unrelated text, empty text and an empty index find nothing."""
    index = EvalNgramIndex.build(EVAL)
    assert index.find("A recipe for bread with flour, water, salt and yeast.") is None
    assert index.find("") is None
    empty = EvalNgramIndex.build([])
    assert len(empty) == 0 and empty.find(EVAL[0][1]) is None


def test_index_deduplicates_and_credits_first_source():
    """The same item in two sets is stored once, credited to the first set."""
    item = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    index = EvalNgramIndex.build([("a", item), ("b", item)], n=13)
    assert len(index) == 2
    assert index.find(item).source == "a"


def test_gram_hashes_are_deterministic_and_length_sensitive():
    """Window hashes repeat for repeated windows, differ across lengths, and are empty for short texts."""
    h = token_hashes(["x", "y", "x", "y"])
    g2 = gram_hashes(h, 2)
    assert g2[0] == g2[2] and g2[0] != g2[1]
    assert gram_hashes(h, 5).size == 0
    assert not np.intersect1d(gram_hashes(h, 1), gram_hashes(h, 2)).size
    assert token_hashes(["x"])[0] == np.uint64(token_hashes(["x"])[0])


def test_bad_sizes_are_rejected():
    """Non-positive n-gram sizes are configuration errors."""
    with pytest.raises(ValueError, match="n-gram"):
        EvalNgramIndex.build(EVAL, n=0)
