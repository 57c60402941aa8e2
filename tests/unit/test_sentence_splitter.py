"""prepare.sentence_splitter: the chunker with sentence starts from outside, JVM offsets, the Spark NLP pin."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from fi_spark.config import ConfigError, load_config
from fi_spark.ingest.sentences import SPARK_NLP_VERSION, spark_nlp_coordinate
from fi_spark.text.chunking import chunk_text, clean_starts, sentence_starts, utf16_to_str_offsets
from tests.conftest import REPO

TEXT = "Alpha beta, gamma delta. Epsilon zeta, eta theta."


@dataclass
class _Encoding:
    offsets: list[tuple[int, int]]


class WhitespaceTokenizer:
    """One token per run of non-space characters, so token counts and offsets can be read off the text."""

    def encode(self, text: str, add_special_tokens: bool = False) -> _Encoding:
        return _Encoding([m.span() for m in re.finditer(r"\S+", text)])


def spans(text: str, starts: list[int] | None) -> list[tuple[int, int, str]]:
    chunks = chunk_text(text, WhitespaceTokenizer(), max_tokens=3, overlap=0, starts=starts)
    return [(c.char_start, c.char_end, text[c.char_start : c.char_end]) for c in chunks]


def test_regex_starts_are_the_default():
    """Without starts the chunker splits at the regex's sentence starts; 4-token sentences get a hard cut."""
    assert sentence_starts(TEXT) == [0, 25]
    assert spans(TEXT, None) == [
        (0, 17, "Alpha beta, gamma"),
        (18, 24, "delta."),
        (25, 42, "Epsilon zeta, eta"),
        (43, 49, "theta."),
    ]


def test_external_starts_decide_the_chunk_ends():
    """Starts after each comma (as another splitter could give) make clause-sized chunks instead."""
    assert spans(TEXT, [0, 12, 25, 39]) == [
        (0, 11, "Alpha beta,"),
        (12, 24, "gamma delta."),
        (25, 38, "Epsilon zeta,"),
        (39, 49, "eta theta."),
    ]


def test_external_starts_are_cleaned():
    """Unsorted, repeated and out-of-range starts are tolerated; 0 is always a start; empty text has none."""
    assert clean_starts([39, 12, 12, -3, 49, 500], len(TEXT)) == [0, 12, 39]
    assert spans(TEXT, [39, 12, 12, 500]) == spans(TEXT, [0, 12, 39])
    assert clean_starts([0, 4], 0) == []


def test_no_external_starts_means_token_cuts_only():
    """An empty list (the detector found no sentence) is not the regex: chunks are cut every 3 tokens."""
    assert spans(TEXT, []) == [(0, 17, "Alpha beta, gamma"), (18, 38, "delta. Epsilon zeta,"), (39, 49, "eta theta.")]


def test_utf16_offsets_map_to_str_indices():
    """JVM offsets count an emoji as two UTF-16 units; after it they are one more than the str index."""
    text = "\U0001f600 Hi. Ok."  # str: 😀=0, H=2, O=6; UTF-16: 😀=0-1, H=3, O=7
    assert len(text.encode("utf-16-le")) // 2 == len(text) + 1
    assert utf16_to_str_offsets(text, [0, 3, 7]) == [0, 2, 6]
    assert utf16_to_str_offsets(text, [1]) == [0], "an offset inside the surrogate pair maps to its character"
    assert utf16_to_str_offsets("café. Déjà vu.", [0, 6]) == [0, 6], "BMP text: offsets unchanged"


def test_spark_nlp_coordinate_follows_the_spark_version():
    """The jar named in the error matches the cluster's Spark: 3.x Scala 2.12, 4.0.0 its own artifact, 4.0.1+ 2.13."""
    assert spark_nlp_coordinate("3.5.1") == "com.johnsnowlabs.nlp:spark-nlp_2.12:7.0.0"
    assert spark_nlp_coordinate("3.5.2-amzn-1") == "com.johnsnowlabs.nlp:spark-nlp_2.12:7.0.0"
    assert spark_nlp_coordinate("4.0.0") == "com.johnsnowlabs.nlp:spark-nlp-spark400_2.13:7.0.0"
    assert spark_nlp_coordinate("4.0.1") == "com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0"


def test_setup_pins_the_spark_nlp_version_the_errors_name():
    """setup.py's `sparknlp` extra pins the version whose jars the error messages name."""
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    assert re.findall(r'"sparknlp": \["spark-nlp==([\d.]+)"\]', text) == [SPARK_NLP_VERSION]


def test_sentence_splitter_is_a_closed_choice_defaulting_to_regex():
    """The switch defaults to the pure-Python regex; an unknown splitter fails at load time naming the key."""
    assert load_config("local", []).prepare.sentence_splitter == "regex"
    assert load_config("local", ["prepare.sentence_splitter=sparknlp"]).prepare.sentence_splitter == "sparknlp"
    with pytest.raises(ConfigError, match="prepare.sentence_splitter"):
        load_config("local", ["prepare.sentence_splitter=nltk"])
