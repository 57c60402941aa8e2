"""Property-based fuzzing of the pure record parsers (documents, queries, template banks): never a crash,
exactly one outcome per record, and every output value one that Arrow can store (issue 14)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fi_spark.config import QueriesConfig, TemplatesConfig
from fi_spark.genericize.import_templates import _parse_rows
from fi_spark.genericize.rows import _check_batches
from fi_spark.ingest.jsonline import EXCERPT_CHARS, MAX_DEPTH, PARSE_REASONS, parse_json_object, safe_excerpt
from fi_spark.ingest.quality import REASONS, QualityThresholds
from fi_spark.ingest.queries import REASONS as QUERY_REASONS
from fi_spark.ingest.queries import classify_query
from fi_spark.ingest.records import classify_record
from tests.hostile import FUZZ, GOOD, arrow_safe, nested, record_line

T = QualityThresholds(min_chars=20, max_chars=5000, min_words=3)
STRING_FIELDS = ("source_id", "url", "text", "text_hash", "raw_hash", "reason", "detail", "raw_excerpt")


def assert_safe_excerpt(excerpt: str | None) -> None:
    assert excerpt is not None
    excerpt.encode("utf-8")  # strict: no surrogates
    assert len(excerpt) <= EXCERPT_CHARS * 6
    assert not any(ch in excerpt for ch in "\x00\x1b\u202e\u2066")


@FUZZ
@given(record_line())
@example('{"text": "' + GOOD + ' \\ud800"}')  # the record that crashed prepare_corpus in issue 14
@example('{"\\udc00": 1, "text": "' + GOOD + '"}')
@example('{"id": ' + "9" * 5000 + ', "text": "' + GOOD + '"}')
def test_classify_record_never_crashes_and_is_arrow_safe(raw: str) -> None:
    """Any line yields a document or one known reason, with values Arrow accepts and a safe excerpt."""
    out = classify_record(raw, T)
    assert (out.reason is None) == (out.text_hash is not None)
    for name in STRING_FIELDS:
        arrow_safe([getattr(out, name)])
    arrow_safe([list((out.metadata or {}).items())], pa.map_(pa.string(), pa.string()))
    if out.reason is not None:
        assert out.reason in REASONS
        assert_safe_excerpt(out.raw_excerpt)


@FUZZ
@given(record_line())
def test_classify_query_never_crashes_and_is_arrow_safe(raw: str) -> None:
    """Any line yields a query or one known reason; every value converts to Arrow."""
    out = classify_query(raw, QueriesConfig())
    assert (out.reason is None) == (out.query_id is not None)
    for value in (out.query_id, out.text, out.source_id, out.source, out.detail, out.raw_excerpt):
        arrow_safe([value])
    if out.reason is not None:
        assert out.reason in QUERY_REASONS
        assert_safe_excerpt(out.raw_excerpt)


@FUZZ
@given(st.lists(record_line(), min_size=1, max_size=4))
def test_template_bank_rows_parse_and_validate_without_crashing(lines: list[str]) -> None:
    """Bank rows -> parsed rows -> template validation: no crash, one outcome per row, Arrow-safe output."""
    cfg = TemplatesConfig()
    batch = pd.DataFrame({"value": lines, "input_file": "bank.jsonl"})
    parsed = pd.concat(list(_parse_rows(cfg, iter([batch]))))
    assert len(parsed) == sum(1 for line in lines if line.strip())
    for column in parsed.columns:
        arrow_safe(list(parsed[column]))
    candidates = parsed.assign(query=None)[["source_key", "template", "description", "query", "reason", "detail"]]
    for released in (False, True):  # our rules, and a released bank kept as released
        checked = pd.concat(list(_check_batches(cfg, released, iter([candidates]))))
        assert len(checked) == len(parsed)
        for column in ("template_id", "canonical", "reason", "detail"):
            arrow_safe(list(checked[column]))


@pytest.mark.parametrize(
    "raw, reason",
    [
        ('{"text": "a \\ud800 b"}', "invalid_unicode"),
        ('{"text": "a \\udfff"}', "invalid_unicode"),
        ('{"metadata": {"k": ["\\ud83d"]}, "text": "x"}', "invalid_unicode"),
        ('{"id": ' + "9" * 5000 + "}", "malformed_json"),
        (nested(5000), "too_deep"),
        ('{"a": ' + nested(MAX_DEPTH) + "}", "too_deep"),
        ("[1, 2]", "not_an_object"),
        ('"just a string"', "not_an_object"),
        ("caf\ufffd", "invalid_encoding"),
        ("\x00fi-spark-reader-reject\x00bogus\x00x\x00y", "malformed_json"),
    ],
)
def test_parse_reasons(raw: str, reason: str) -> None:
    """Each line-level defect has its own reason from PARSE_REASONS."""
    record, failed = parse_json_object(raw)
    assert record is None and failed is not None and failed[0] == reason and reason in PARSE_REASONS


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('\ufeff{"text": "x"}', {"text": "x"}),  # one BOM is an encoding marker, dropped
        ('{"text": "a", "text": "b"}', {"text": "b"}),  # duplicate keys: the last wins
        ('{"text": "\\ud83d\\ude00"}', {"text": "\U0001f600"}),  # a surrogate *pair* is one character
        ('{"text": "\\\\ud800"}', {"text": "\\ud800"}),  # an escaped backslash: literal text, not a surrogate
        ('{"a": ' + nested(MAX_DEPTH - 2) + "}", {"a": json.loads(nested(MAX_DEPTH - 2))}),
    ],
)
def test_parse_accepts_the_documented_oddities(raw: str, expected: dict) -> None:
    """BOMs, duplicate keys, surrogate pairs, escaped backslashes and nesting up to MAX_DEPTH parse."""
    assert parse_json_object(raw) == (expected, None)


def test_safe_excerpt_escapes_controls_bidi_and_surrogates() -> None:
    """Excerpts are valid UTF-8 and cannot garble a report (controls, bidi overrides shown as escapes)."""
    assert safe_excerpt("a\x00b\x1b[1m\u202ec\ud800\td\ne") == "a\\x00b\\x1b[1m\\u202ec\\ud800\td\ne"
    assert len(safe_excerpt("x" * 10_000)) == EXCERPT_CHARS


def test_overlong_text_is_rejected_before_normalizing() -> None:
    """A text over twice max_chars is too_long without paying for normalization (a 50 MB text took 33 s)."""
    out = classify_record(json.dumps({"text": "word " * 2100}), T)
    assert (out.reason, out.detail) == ("too_long", "10500 characters before normalization > max_chars 5000")
