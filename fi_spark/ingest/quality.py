"""Basic document checks of prepare_corpus: each returns a machine-readable reason and a detail.

These are the cheap filters every corpus needs (length, word count, symbol share, repeated lines).
Web-crawl heuristics (Gopher / C4 / FineWeb style) live in fi_spark.text.web_quality.
"""

from __future__ import annotations

from collections import Counter

from fi_spark.config.text import QualityThresholds
from fi_spark.ingest.jsonline import PARSE_REASONS

# Every reason a document can be dropped for, in one list (doc_rejects.reason takes these values); the
# line-level ones (size, encoding, JSON, nesting, Unicode) are shared with queries and template banks.
REASONS = {
    **PARSE_REASONS,
    "missing_text": "the record has no `text` field",
    "text_not_string": "`text` is not a string",
    "empty_text": "the text is empty after normalization",
    "too_short": "fewer characters than prepare.min_chars",
    "too_long": "more characters than prepare.max_chars",
    "too_few_words": "fewer words than prepare.min_words",
    "non_alpha_ratio": "too large a share of characters are not letters",
    "repeated_lines": "too large a share of lines repeat other lines",
    "duplicate_id": "another record has the same id (the copy with the smallest text hash is kept)",
}


def check_quality(text: str, n_words: int, t: QualityThresholds) -> tuple[str, str] | None:
    """(reason, detail) for the first failed check on normalized ``text``, or None when it passes."""
    n = len(text)
    if n == 0:
        return "empty_text", "0 characters"
    if n > t.max_chars:
        return "too_long", f"{n} characters > max_chars {t.max_chars}"
    if n < t.min_chars:
        return "too_short", f"{n} characters < min_chars {t.min_chars}"
    if n_words < t.min_words:
        return "too_few_words", f"{n_words} words < min_words {t.min_words}"
    ratio = non_alpha_ratio(text)
    if ratio > t.max_non_alpha_ratio:
        return "non_alpha_ratio", f"{ratio:.2f} of characters are not letters > {t.max_non_alpha_ratio}"
    repeat = line_repeat_ratio(text)
    if repeat > t.max_line_repeat_ratio:
        return "repeated_lines", f"{repeat:.2f} of lines are repeats > {t.max_line_repeat_ratio}"
    return None


def non_alpha_ratio(text: str) -> float:
    """Share of non-space characters that are not letters (digits, punctuation, symbols)."""
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return 1.0
    return sum(1 for ch in visible if not ch.isalpha()) / len(visible)


def line_repeat_ratio(text: str) -> float:
    """Share of non-empty lines that are exact repeats of an earlier line (Gopher's dup_line_frac)."""
    lines = [line for line in text.split("\n") if line]
    if len(lines) < 2:
        return 0.0
    counts = Counter(lines)
    return sum(c - 1 for c in counts.values()) / len(lines)
