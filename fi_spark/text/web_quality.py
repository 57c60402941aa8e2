"""Web-crawl quality heuristics (Gopher, C4, FineWeb), as pure functions of normalized text.

Each ``check_*`` returns ``(reason, detail)`` for the first rule a document breaks, or None; reasons are
the keys of ``WEB_REASONS`` and go to ``doc_rejects.reason`` unchanged. ``clean_c4_lines`` is the one
transform: C4's line-level boilerplate removal (cookie / javascript notices, too-short lines), applied
before the document-level checks when enabled.

Rules and default thresholds follow the published filters as DataTrove implements them
(``GopherQualityFilter``, ``GopherRepetitionFilter``, ``C4QualityFilter``, ``FineWebQualityFilter``),
so numbers are comparable with FineWeb's ablations; every threshold is a field of
``WebQualityThresholds`` (fi_spark.config.text, the filter part of the ``web`` section), and a family
runs only when ``filters`` names it. Words are whitespace-separated tokens, as in those filters; the stop-word rule is
English-specific and off (``gopher_min_stop_words = 0``) unless configured.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fi_spark.config.text import WebQualityThresholds

WEB_REASONS = {
    "gopher_word_count": "word count outside [gopher_min_words, gopher_max_words]",
    "gopher_mean_word_length": "mean word length outside [gopher_min_mean_word_length, gopher_max_mean_word_length]",
    "gopher_symbol_ratio": "too many '#' and ellipsis symbols per word",
    "gopher_bullet_lines": "too many lines start with a bullet",
    "gopher_ellipsis_lines": "too many lines end with an ellipsis",
    "gopher_alpha_words": "too few words contain a letter",
    "gopher_stop_words": "too few English stop words",
    "gopher_dup_lines": "too large a share of lines (or their characters) are duplicates",
    "gopher_dup_paragraphs": "too large a share of paragraphs (or their characters) are duplicates",
    "gopher_top_ngram": "the most frequent n-gram covers too many characters",
    "gopher_dup_ngrams": "duplicated n-grams cover too many characters",
    "c4_lorem_ipsum": "contains 'lorem ipsum' placeholder text",
    "c4_curly_bracket": "contains a curly bracket (code, templates)",
    "c4_too_few_sentences": "fewer lines with terminal punctuation than c4_min_sentences",
    "fineweb_line_punct": "too few lines end with punctuation",
    "fineweb_short_lines": "too many short lines",
    "fineweb_char_dup": "too many characters in duplicated lines",
    "fineweb_list_ratio": "too many newlines per word (lists, menus)",
    "empty_after_cleaning": "nothing left after line-level boilerplate removal",
    "language": "not in web.languages, or identified with too low a probability (fi_spark.text.language)",
}

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "–", "-", "*", "·", "➢", "►", "◦")
_ELLIPSES = ("...", "…")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？")
_C4_BOILERPLATE = ("javascript", "cookie", "terms of use", "privacy policy", "uses cookies", "use of cookies")
_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_HAS_ALPHA = re.compile(r"[^\W\d_]")


Verdict = tuple[str, str] | None


def check_web_quality(text: str, t: WebQualityThresholds) -> Verdict:
    """The first failed rule of the enabled families, in the order Gopher, repetition, C4, FineWeb."""
    for enabled, check in (
        (t.enable_gopher_quality, check_gopher_quality),
        (t.enable_gopher_repetition, check_gopher_repetition),
        (t.enable_c4, check_c4),
        (t.enable_fineweb, check_fineweb),
    ):
        if enabled:
            verdict = check(text, t)
            if verdict is not None:
                return verdict
    return None


def check_gopher_quality(text: str, t: WebQualityThresholds) -> Verdict:
    words = text.split()
    n = len(words)
    if not t.gopher_min_words <= n <= t.gopher_max_words:
        return "gopher_word_count", f"{n} words outside [{t.gopher_min_words}, {t.gopher_max_words}]"
    mean_len = sum(len(w) for w in words) / n
    if not t.gopher_min_mean_word_length <= mean_len <= t.gopher_max_mean_word_length:
        return "gopher_mean_word_length", f"mean word length {mean_len:.2f}"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / n > t.gopher_max_symbol_word_ratio:
        return "gopher_symbol_ratio", f"{symbols / n:.3f} symbols per word > {t.gopher_max_symbol_word_ratio}"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if lines:
        bullets = sum(1 for line in lines if line.startswith(_BULLETS)) / len(lines)
        if bullets > t.gopher_max_bullet_lines_ratio:
            return "gopher_bullet_lines", f"{bullets:.2f} of lines start with a bullet"
        ellipsis = sum(1 for line in lines if line.endswith(_ELLIPSES)) / len(lines)
        if ellipsis > t.gopher_max_ellipsis_lines_ratio:
            return "gopher_ellipsis_lines", f"{ellipsis:.2f} of lines end with an ellipsis"
    alpha = sum(1 for w in words if _HAS_ALPHA.search(w)) / n
    if alpha < t.gopher_min_alpha_words_ratio:
        return "gopher_alpha_words", f"{alpha:.2f} of words contain a letter < {t.gopher_min_alpha_words_ratio}"
    if t.gopher_min_stop_words:
        stops = sum(1 for w in words if w.lower() in STOP_WORDS)
        if stops < t.gopher_min_stop_words:
            return "gopher_stop_words", f"{stops} stop words < {t.gopher_min_stop_words}"
    return None


def check_gopher_repetition(text: str, t: WebQualityThresholds) -> Verdict:
    for unit, parts, max_ratio, max_char_ratio in (
        (
            "paragraphs",
            _PARAGRAPH_SPLIT.split(text.strip()),
            t.gopher_max_dup_para_ratio,
            t.gopher_max_dup_para_char_ratio,
        ),
        ("lines", text.split("\n"), t.gopher_max_dup_line_ratio, t.gopher_max_dup_line_char_ratio),
    ):
        parts = [p for p in parts if p.strip()]
        if not parts:
            continue
        dup, dup_chars = _duplicates(parts)
        reason = "gopher_dup_paragraphs" if unit == "paragraphs" else "gopher_dup_lines"
        if dup / len(parts) > max_ratio:
            return reason, f"{dup / len(parts):.2f} of {unit} are duplicates > {max_ratio}"
        if dup_chars / max(len(text), 1) > max_char_ratio:
            return reason, f"duplicate {unit} hold {dup_chars / len(text):.2f} of characters > {max_char_ratio}"
    words = text.split()
    if not words:
        return None
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    sizes = [*t.gopher_top_ngram_ratios, *t.gopher_dup_ngram_ratios]
    keys = ngram_keys(word_ids(words), sizes)
    empty = np.zeros(0, dtype=np.uint64)
    for n, max_ratio in sorted(t.gopher_top_ngram_ratios.items()):
        ratio = top_ngram_char_ratio(keys.get(n, empty), lengths, n)
        if ratio > max_ratio:
            return "gopher_top_ngram", f"top {n}-gram covers {ratio:.2f} of characters > {max_ratio}"
    for n, max_ratio in sorted(t.gopher_dup_ngram_ratios.items()):
        ratio = dup_ngram_char_ratio(keys.get(n, empty), lengths, n)
        if ratio > max_ratio:
            return "gopher_dup_ngrams", f"duplicated {n}-grams cover {ratio:.2f} of characters > {max_ratio}"
    return None


def check_c4(text: str, t: WebQualityThresholds) -> Verdict:
    lower = text.lower()
    if "lorem ipsum" in lower:
        return "c4_lorem_ipsum", "contains 'lorem ipsum'"
    if "{" in text:
        return "c4_curly_bracket", "contains '{'"
    if t.c4_min_sentences:
        sentences = sum(1 for line in text.split("\n") if line.strip().endswith(_TERMINAL))
        if sentences < t.c4_min_sentences:
            return "c4_too_few_sentences", f"{sentences} lines end a sentence < {t.c4_min_sentences}"
    return None


def check_fineweb(text: str, t: WebQualityThresholds) -> Verdict:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return None
    punct = sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines)
    if punct < t.fineweb_min_line_punct_ratio:
        return "fineweb_line_punct", f"{punct:.2f} of lines end with punctuation < {t.fineweb_min_line_punct_ratio}"
    short = sum(1 for line in lines if len(line) <= t.fineweb_short_line_chars) / len(lines)
    if short > t.fineweb_max_short_line_ratio:
        return "fineweb_short_lines", f"{short:.2f} of lines have <= {t.fineweb_short_line_chars} chars"
    dup_chars = _duplicates(lines)[1]
    total_chars = sum(len(line) for line in lines)
    if dup_chars / total_chars > t.fineweb_max_char_dup_ratio:
        return "fineweb_char_dup", f"{dup_chars / total_chars:.3f} of characters are in duplicated lines"
    words = len(text.split())
    newlines = text.count("\n")
    if words and newlines / words > t.fineweb_max_newline_word_ratio:
        return "fineweb_list_ratio", f"{newlines / words:.2f} newlines per word > {t.fineweb_max_newline_word_ratio}"
    return None


def quality_score(text: str) -> float:
    """A 0..1 score for choosing the survivor of a near-duplicate cluster (``near_dedup.survivor=best_quality``).

    Mean of three shares that the filters above also use: lines ending in punctuation (prose, not
    menus), words containing a letter, and characters outside duplicated lines. Deterministic and cheap.
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    words = text.split()
    if not lines or not words:
        return 0.0
    punct = sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines)
    alpha = sum(1 for w in words if _HAS_ALPHA.search(w)) / len(words)
    total = sum(len(line) for line in lines)
    unique = 1.0 - _duplicates(lines)[1] / total
    return round((punct + alpha + unique) / 3.0, 6)


def clean_c4_lines(text: str, t: WebQualityThresholds) -> str:
    """C4's line filter: drop lines with boilerplate phrases or fewer than ``c4_min_words_per_line`` words."""
    kept = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            kept.append("")
            continue
        lower = stripped.lower()
        if any(phrase in lower for phrase in _C4_BOILERPLATE):
            continue
        if len(stripped.split()) < t.c4_min_words_per_line:
            continue
        kept.append(stripped)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


# ------------------------------------------------------------------ measures (public for tests and reports)
def _duplicates(parts: list[str]) -> tuple[int, int]:
    """(number of parts that repeat an earlier one, characters in those repeats)."""
    seen: set[str] = set()
    dup = dup_chars = 0
    for part in parts:
        if part in seen:
            dup += 1
            dup_chars += len(part)
        else:
            seen.add(part)
    return dup, dup_chars


def word_ids(words: list[str]) -> np.ndarray:
    """Integer id per word (equal words, equal ids), via pandas' C hash table instead of a Python dict."""
    return pd.factorize(pd.Series(words, dtype=object), sort=False)[0].astype(np.uint64)


def ngram_keys(ids: np.ndarray, sizes: list[int]) -> dict[int, np.ndarray]:
    """64-bit key per word n-gram for each n in ``sizes``: position-weighted sums of word ids with random
    odd multipliers (wrapping), built incrementally so all sizes cost one multiply-add per word and size."""
    out: dict[int, np.ndarray] = {}
    keys = (ids + np.uint64(1)) * _MULTIPLIERS[0]
    for n in range(2, max(sizes, default=0) + 1):
        if len(ids) < n:
            break
        keys = keys[: len(ids) - n + 1] + (ids[n - 1 :] + np.uint64(1)) * _MULTIPLIERS[n - 1]
        if n in sizes:
            out[n] = keys
    if 1 in sizes:
        out[1] = (ids + np.uint64(1)) * _MULTIPLIERS[0]
    return out


_MULTIPLIERS = np.random.Generator(np.random.PCG64(7)).integers(0, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)


def top_ngram_char_ratio(keys: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters of the most frequent word n-gram times its count / all word characters (0 if none repeats).

    Ties go to the n-gram that occurs first, as with ``Counter.most_common``.
    """
    if len(keys) == 0:
        return 0.0
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    best = counts.max()
    if best < 2:
        return 0.0
    start = int(first[counts == best].min())
    return float(lengths[start : start + n].sum() * best / lengths.sum())


def dup_ngram_char_ratio(keys: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters of words covered by an n-gram seen earlier in the text / all word characters.

    A word is counted once even when several duplicated n-grams cover it (Gopher's definition).
    """
    if len(keys) == 0:
        return 0.0
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    dup_starts = np.flatnonzero(first[inverse] != np.arange(len(inverse)))
    if len(dup_starts) == 0:
        return 0.0
    cover = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.add.at(cover, dup_starts, 1)
    np.add.at(cover, dup_starts + n, -1)
    covered = np.cumsum(cover[:-1]) > 0
    return float(lengths[covered].sum() / lengths.sum())
