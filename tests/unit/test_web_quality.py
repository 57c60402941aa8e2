"""Web quality heuristics (fi_spark.text.web_quality): each rule fires on what it targets and only then."""

from __future__ import annotations

import numpy as np
import pytest

from fi_spark.config.text import WEB_FILTERS
from fi_spark.text.web_quality import (
    WEB_REASONS,
    WebQualityThresholds,
    check_c4,
    check_fineweb,
    check_gopher_quality,
    check_gopher_repetition,
    check_web_quality,
    clean_c4_lines,
    dup_ngram_char_ratio,
    ngram_keys,
    quality_score,
    top_ngram_char_ratio,
    word_ids,
)

T = WebQualityThresholds(filters=list(WEB_FILTERS))  # every family on (the `web` section has them off)
PROSE = (
    "The river town grew slowly during the nineteenth century, as merchants moved their warehouses closer to the "
    "new railway station. Most families kept small gardens behind their houses, and the market square filled "
    "with farmers every Saturday morning.\n\n"
    "Historians still argue about why the mill closed in 1911. Some point to the flood of that spring, others "
    "to the falling price of wool, which made the long journey to the coast unprofitable for the owners.\n\n"
    "Today the old mill holds a museum, a cafe and a small library that opens three afternoons a week."
)


def test_good_prose_passes_every_family():
    assert check_web_quality(PROSE, T) is None
    assert 0.9 < quality_score(PROSE) <= 1.0


def test_every_reason_is_documented():
    texts = [
        "too few words here.",
        "Menu\nHome\nAbout\nContact\n" * 20,
        PROSE.replace("railway", "{railway}"),
    ]
    for text in texts:
        verdict = check_web_quality(text, T)
        assert verdict is not None and verdict[0] in WEB_REASONS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("word " * 20, "gopher_word_count"),
        ("a b c d e " * 20, "gopher_mean_word_length"),
        ("supercalifragilistic " * 60, "gopher_mean_word_length"),
        ("#reading #more #stories #about #gardens #today " * 12, "gopher_symbol_ratio"),
        ("\n".join(f"- item number {i} in the list of things" for i in range(30)), "gopher_bullet_lines"),
        (
            "\n".join(f"the story continues on line {i} of this long and winding narrative, then..." for i in range(9))
            + "\n"
            + PROSE,
            "gopher_ellipsis_lines",
        ),
        (" ".join(f"{i}000 12.50 9999 apples" for i in range(30)), "gopher_alpha_words"),
    ],
)
def test_gopher_quality_rules(text, reason):
    verdict = check_gopher_quality(text, T)
    assert verdict is not None and verdict[0] == reason, verdict


def test_gopher_stop_words_only_when_configured():
    text = " ".join(f"lorem{i} ipsum{i} dolor{i}" for i in range(30))
    assert check_gopher_quality(text, T) is None
    strict = WebQualityThresholds(gopher_min_stop_words=2)
    assert check_gopher_quality(text, strict)[0] == "gopher_stop_words"
    assert check_gopher_quality(PROSE, strict) is None


def test_gopher_repetition_rules():
    line = "Subscribe to our newsletter for weekly updates from the team"
    assert check_gopher_repetition("\n".join([line] * 5 + [PROSE]), T)[0] == "gopher_dup_lines"
    assert check_gopher_repetition("\n\n".join([PROSE] * 2), T)[0] == "gopher_dup_paragraphs"
    repeated_phrase = " ".join(["buy cheap shoes"] * 40 + PROSE.split())
    assert check_gopher_repetition(repeated_phrase, T)[0] == "gopher_top_ngram"
    assert check_gopher_repetition(PROSE, T) is None


def _reference_dup_ratio(words: list[str], n: int) -> float:
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c) / sum(len(w) for w in words)


def test_vectorized_ngram_measures_match_a_plain_python_reference():
    """The numpy n-gram measures equal the straightforward definitions on random repetitive texts."""
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" * int(rng.integers(1, 4)) for i in range(12)]
    for _ in range(30):
        words = [vocab[int(i)] for i in rng.integers(0, len(vocab), size=int(rng.integers(5, 120)))]
        lengths = np.array([len(w) for w in words])
        keys = ngram_keys(word_ids(words), [2, 3, 5, 7])
        for n in (2, 3, 5, 7):
            got = dup_ngram_char_ratio(keys.get(n, np.zeros(0, np.uint64)), lengths, n)
            assert got == pytest.approx(_reference_dup_ratio(words, n))
        grams = [tuple(words[i : i + 2]) for i in range(len(words) - 1)]
        best = max(grams, key=grams.count)
        expected = sum(map(len, best)) * grams.count(best) / lengths.sum() if grams.count(best) > 1 else 0.0
        assert top_ngram_char_ratio(keys[2], lengths, 2) == pytest.approx(expected)


def test_c4_rules():
    assert check_c4(PROSE + " Lorem ipsum dolor sit amet.", T)[0] == "c4_lorem_ipsum"
    assert check_c4(PROSE + " function() { return 1; }", T)[0] == "c4_curly_bracket"
    assert check_c4(PROSE, WebQualityThresholds(c4_min_sentences=5))[0] == "c4_too_few_sentences"
    assert check_c4(PROSE, T) is None


def test_fineweb_rules():
    menu = "\n".join(f"Section {i} of the site navigation menu here" for i in range(40))
    assert check_fineweb(menu, T)[0] == "fineweb_line_punct"
    short = "\n".join(["Short line."] * 1 + [f"Item {i}." for i in range(20)] + [PROSE])
    assert check_fineweb(short, T)[0] == "fineweb_short_lines"
    dup = PROSE + "\nThe mill is closed on Mondays.\nThe mill is closed on Mondays."
    assert check_fineweb(dup, T)[0] == "fineweb_char_dup"
    listy = "\n".join(f"Point {i}." for i in range(30))
    assert check_fineweb(listy, WebQualityThresholds(fineweb_max_short_line_ratio=1.0))[0] == "fineweb_list_ratio"
    assert check_fineweb(PROSE, T) is None


def test_families_can_be_switched_off():
    text = " ".join(f"word{i}" for i in range(20))
    assert check_web_quality(text, T)[0] == "gopher_word_count"
    off = WebQualityThresholds(filters=["gopher_repetition", "c4"])
    assert check_web_quality(text, off) is None


def test_top_ngram_counts_overlapping_occurrences_as_gopher_does():
    """'word word word ...': the top 2-gram's occurrences overlap, so the ratio exceeds 1 (DataTrove does the same)."""
    verdict = check_gopher_repetition("word " * 20, T)
    assert verdict is not None and verdict[0] == "gopher_top_ngram"


def test_clean_c4_lines_drops_boilerplate_and_short_lines():
    page = "Home\nThis site uses cookies to improve your experience.\n\n" + PROSE + "\nPlease enable JavaScript now."
    cleaned = clean_c4_lines(page, T)
    assert "cookies" not in cleaned and "JavaScript" not in cleaned and "Home" not in cleaned
    assert cleaned.startswith("The river town")


def test_web_section_is_what_the_checks_read():
    """The `web` section is a WebQualityThresholds: filters and thresholds set by key reach the checks as they are."""
    from fi_spark.config import load_config

    web = load_config(
        None,
        ["web.filters=[c4,fineweb]", "web.gopher_min_words=7", "web.fineweb_short_line_chars=12",
         "web.gopher_top_ngram_ratios={3: 0.5}"],
    ).web  # fmt: skip
    assert isinstance(web, WebQualityThresholds)
    assert (web.enable_c4, web.enable_fineweb, web.enable_gopher_quality, web.enable_gopher_repetition) == (
        True, True, False, False,
    )  # fmt: skip
    assert (web.gopher_min_words, web.fineweb_short_line_chars, web.gopher_top_ngram_ratios) == (7, 12, {3: 0.5})
    text = " ".join(f"word{i}" for i in range(20))
    assert check_gopher_quality(text, T)[0] == "gopher_word_count"
    assert check_gopher_quality(text, load_config(None, ["web.gopher_min_words=7"]).web) is None


def test_check_texts_cleans_hashes_and_rejects():
    """The pandas-UDF body: unchanged rows pass as nulls, cleaned rows get a new hash, failures a reason."""
    import pandas as pd

    from fi_spark.ingest.prepare_web import check_texts
    from fi_spark.text.normalize import text_hash

    t = WebQualityThresholds(filters=list(WEB_FILTERS), clean_c4_lines=True)
    page = "This site uses cookies.\n" + PROSE
    out = check_texts(pd.Series([PROSE, page, None, "Home\nMenu"]), t)
    assert out.iloc[0]["text"] == PROSE and out.iloc[0]["reason"] is None
    assert out.iloc[1]["text"] == PROSE and out.iloc[1]["text_hash"] == text_hash(PROSE)
    assert out.iloc[2].isna().all()
    assert out.iloc[3]["reason"] == "empty_after_cleaning"


def test_language_filter_keeps_allowed_languages():
    """py3langid's shipped model: English prose passes an 'en' filter, German prose is rejected with the language."""
    from fi_spark.text.language import check_language, detect_language

    german = "Die Stadt am Fluss wuchs im neunzehnten Jahrhundert langsam, als die Kaufleute ihre Lager verlegten."
    assert detect_language(PROSE)[0] == "en"
    assert check_language(PROSE, ("en",), 0.5) is None
    verdict = check_language(german, ("en", "fr"), 0.5)
    assert verdict is not None and verdict[0] == "language" and "detected de" in verdict[1]
