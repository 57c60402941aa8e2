"""Normalization and quality checks of prepare_corpus (pure Python)."""

import unicodedata

from fi_spark.ingest.quality import QualityThresholds, check_quality, line_repeat_ratio, non_alpha_ratio
from fi_spark.text.normalize import count_words, normalize_text, text_hash


def test_nfc_makes_composed_and_decomposed_equal():
    """Decomposed accents normalize to the composed form, so both hash alike."""
    decomposed = unicodedata.normalize("NFD", "Café crème")
    assert decomposed != "Café crème"
    assert normalize_text(decomposed) == "Café crème"
    assert text_hash(normalize_text(decomposed)) == text_hash("Café crème")


def test_control_characters_and_spaces():
    """Control chars, BOM and zero-width spaces go; tabs/nbsp fold to one space; lines are stripped."""
    raw = "\ufeffHello\x00 \t world\u200b!\r\nSecond\xa0\xa0line  \x07\r\n\r\n\r\n\r\nThird"
    assert normalize_text(raw) == "Hello world!\nSecond line\n\nThird"


def test_empty_and_whitespace_only():
    assert normalize_text("   \n\t \r\n") == ""


def test_count_words_unicode():
    assert count_words("Zürich is 3 km away — naïve café") == 7


def test_quality_reasons_in_order():
    """Each threshold produces its own machine-readable reason."""
    t = QualityThresholds(min_chars=20, max_chars=200, min_words=4, max_non_alpha_ratio=0.5, max_line_repeat_ratio=0.3)
    assert check_quality("", 0, t)[0] == "empty_text"
    assert check_quality("x" * 201, 1, t)[0] == "too_long"
    assert check_quality("short text", 2, t)[0] == "too_short"
    assert check_quality("onlythreewords here really", 3, t)[0] == "too_few_words"
    assert check_quality("12345 67890 !!!! ???? #### abc", 6, t)[0] == "non_alpha_ratio"
    assert check_quality("same line here\nsame line here\nsame line here\nother", 10, t)[0] == "repeated_lines"
    assert check_quality("A perfectly ordinary sentence with words.", 6, t) is None


def test_ratios():
    assert non_alpha_ratio("ab12") == 0.5
    assert non_alpha_ratio("   ") == 1.0
    assert line_repeat_ratio("a\nb\na\na") == 0.5
    assert line_repeat_ratio("one line") == 0.0
