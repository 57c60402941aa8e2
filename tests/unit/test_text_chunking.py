"""Token-aware chunking with sentence boundaries and overlap (pure Python, real MiniLM tokenizer)."""

import pytest

from fi_spark.text.chunking import chunk_offsets, chunk_text, sentence_starts
from fi_spark.text.tokenizer import load_tokenizer


def test_sentence_starts():
    text = "First one. Second one! Third?\nHeading\nLast."
    starts = sentence_starts(text)
    assert [text[s : s + 5] for s in starts] == ["First", "Secon", "Third", "Headi", "Last."]


def _words(n_sentences: int, words_per_sentence: int) -> tuple[list[tuple[int, int]], list[int], str]:
    """A synthetic text where every word is one token: offsets and sentence starts are exact."""
    parts, offsets, starts, pos = [], [], [], 0
    for s in range(n_sentences):
        starts.append(pos)
        for w in range(words_per_sentence):
            word = f"w{s}x{w}" + ("." if w == words_per_sentence - 1 else "")
            offsets.append((pos, pos + len(word)))
            parts.append(word)
            pos += len(word) + 1
    return offsets, starts, " ".join(parts)


def test_chunks_end_on_sentence_boundaries():
    """With 5-token sentences and room for 12 tokens, chunks hold two whole sentences."""
    offsets, starts, _ = _words(6, 5)
    assert chunk_offsets(offsets, starts, max_tokens=12, overlap=0) == [(0, 10), (10, 20), (20, 30)]


def test_overlap_aligns_to_a_sentence_start_when_possible():
    """Overlap of 5 tokens: the next chunk restarts at the last sentence of the previous one."""
    offsets, starts, _ = _words(6, 5)
    assert chunk_offsets(offsets, starts, max_tokens=12, overlap=5) == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]


def test_long_sentence_is_cut_at_token_boundaries():
    """One 25-token sentence with max 10 and overlap 2: hard cuts, 2 tokens shared."""
    offsets, starts, _ = _words(1, 25)
    assert chunk_offsets(offsets, starts, max_tokens=10, overlap=2) == [(0, 10), (8, 18), (16, 25)]


def test_invalid_sizes():
    with pytest.raises(ValueError):
        chunk_offsets([(0, 1)], [0], max_tokens=4, overlap=4)


def test_real_tokenizer_chunks_cover_text_and_respect_limit():
    """With the packaged MiniLM tokenizer: every chunk <= max tokens, spans are exact slices, whole text covered."""
    tok = load_tokenizer("minilm")
    text = " ".join(f"Sentence number {i} talks about the history of agriculture in Europe." for i in range(60))
    chunks = chunk_text(text, tok, max_tokens=64, overlap=8)
    assert len(chunks) > 5
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    for prev, cur in zip(chunks, chunks[1:]):
        assert prev.char_start < cur.char_start < prev.char_end, "consecutive chunks overlap"
    for c in chunks:
        assert c.n_tokens <= 64
        assert len(tok.encode(text[c.char_start : c.char_end], add_special_tokens=False).ids) == c.n_tokens
        assert text[c.char_end - 1] == ".", "chunks end at a sentence end when sentences fit"
    assert text.startswith(text[chunks[0].char_start : chunks[0].char_end])


def test_empty_text_has_no_chunks():
    assert chunk_text("", load_tokenizer("minilm"), 16, 2) == []
