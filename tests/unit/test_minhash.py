"""MinHash signatures (fi_spark.dedup.minhash): determinism, shingling rules, short documents, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from fi_spark.dedup import minhash
from fi_spark.dedup.minhash import EMPTY, OK, SHORT, MinHasher, estimated_jaccard, jaccard

FOX = "The quick brown fox jumps over the lazy dog"


def _words(n: int, start: int = 0) -> list[str]:
    return [f"w{i}" for i in range(start, start + n)]


def test_signature_values_are_pinned():
    """Signatures must not change between processes, machines or releases: stored clusters depend on them."""
    assert list(map(int, MinHasher().signature(FOX)[:4])) == [3294659985, 3568133632, 3589858504, 3259436941]
    char = MinHasher(unit="char", ngram=5, num_perm=16).signature("The quick brown fox")
    assert list(map(int, char[:4])) == [78266035, 2608150042, 1715021993, 611057594]


def test_signature_independent_of_batch_and_instance():
    """A document's signature does not depend on what else is in its batch, nor on the MinHasher object."""
    texts = [FOX, "short", "", " ".join(_words(300)), "Another document with several words in it here"]
    batch = MinHasher().signatures(texts)
    for i, text in enumerate(texts):
        alone = MinHasher().signatures([text])
        assert np.array_equal(batch.values[i], alone.values[0])
        assert batch.status[i] == alone.status[0]


def test_batches_split_by_size_give_the_same_signatures(monkeypatch):
    """Splitting the input into several joined passes (memory bound) changes nothing."""
    texts = [" ".join(_words(50, start=k)) for k in range(20)]
    whole = MinHasher().signatures(texts).values
    monkeypatch.setattr(minhash, "_BATCH_CHARS", 500)
    assert np.array_equal(MinHasher().signatures(texts).values, whole)


def test_word_shingles_ignore_case_and_punctuation():
    """Word shingles are lower-cased runs of letters/digits: punctuation and case do not matter."""
    m = MinHasher(ngram=2)
    assert np.array_equal(m.signature("Hello, World! Big day."), m.signature("hello world big day"))
    assert len(m.shingle_ids("a b c d e f")) == 5
    assert len(MinHasher(ngram=5).shingle_ids("a b c d e f")) == 2


def test_separator_character_inside_a_text_does_not_shift_documents():
    """A NUL inside a text must not be taken for the batch separator (it would shift every later document)."""
    m = MinHasher(ngram=2)
    texts = ["one two\x00three four", FOX]
    batch = m.signatures(texts)
    assert np.array_equal(batch.values[1], m.signature(FOX))
    assert np.array_equal(batch.values[0], m.signature("one two three four"))


def test_char_shingles_fold_whitespace():
    m = MinHasher(unit="char", ngram=4)
    assert np.array_equal(m.signature("Ab  cd\n\nef"), m.signature("ab cd ef"))
    assert len(m.shingle_ids("abcdef")) == 3


def test_short_documents_whole_get_one_shingle_and_collide_only_with_same_tokens():
    """With short_docs='whole', a 3-word text is one shingle: equal tokens collide, different ones do not."""
    m = MinHasher(ngram=5, short_docs="whole")
    sig = m.signatures(["Red apple pie", "red apple, PIE!", "green apple pie", "", "...", FOX])
    assert sig.status == [SHORT, SHORT, SHORT, EMPTY, EMPTY, OK]
    assert [int(n) for n in sig.n_shingles] == [1, 1, 1, 0, 0, 5]
    assert np.array_equal(sig.values[0], sig.values[1])
    assert estimated_jaccard(sig.values[0], sig.values[2]) < 0.1
    # a short document never collides with the n-grams of a longer one that starts with the same words
    assert estimated_jaccard(m.signature("a b c d"), m.signature("a b c d e")) < 0.1


def test_short_documents_skip_get_no_signature():
    m = MinHasher(ngram=5, short_docs="skip")
    sig = m.signatures(["red apple pie", FOX])
    assert sig.status == [SHORT, OK]
    assert not sig.has_signature(0) and sig.has_signature(1)
    assert m.signature("red apple pie") is None


def test_estimate_tracks_exact_jaccard_on_controlled_edits():
    """Mean estimation error over edited documents is near zero and each error is within 5 standard deviations."""
    rng = np.random.default_rng(7)
    m = MinHasher(num_perm=128, ngram=3)
    errors = []
    for k in range(60):
        base = _words(200, start=1000 * k)
        edited = list(base)
        for pos in rng.choice(200, size=int(rng.integers(1, 40)), replace=False):
            edited[pos] = f"x{k}_{pos}"
        a, b = " ".join(base), " ".join(edited)
        exact = jaccard(m.shingle_ids(a), m.shingle_ids(b))
        sig = m.signatures([a, b]).values
        error = estimated_jaccard(sig[0], sig[1]) - exact
        assert abs(error) < 5 * np.sqrt(exact * (1 - exact) / 128) + 0.01
        errors.append(error)
    assert abs(np.mean(errors)) < 0.015


def test_exact_jaccard():
    assert jaccard(np.array([1, 2, 3], np.uint64), np.array([2, 3, 4], np.uint64)) == 0.5
    assert jaccard(np.array([], np.uint64), np.array([], np.uint64)) == 0.0


@pytest.mark.parametrize("kwargs", [{"num_perm": 0}, {"ngram": 0}, {"unit": "token"}, {"short_docs": "drop"}])
def test_invalid_settings_fail_with_a_message(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MinHasher(**kwargs)
