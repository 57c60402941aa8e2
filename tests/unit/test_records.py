"""Parsing one raw JSON line into a document or a reject reason (pure Python)."""

import json

import pytest

from fi_spark.ingest.quality import REASONS, QualityThresholds
from fi_spark.ingest.records import classify_record

T = QualityThresholds(min_chars=20, max_chars=1000, min_words=3)
GOOD = "The quick brown fox jumps over the lazy dog."


@pytest.mark.parametrize(
    "raw, reason",
    [
        ('{"id": 1, "text": "unterminated', "malformed_json"),
        ("[1, 2, 3]", "not_an_object"),
        ('{"id": "a"}', "missing_text"),
        ('{"id": "a", "text": null}', "missing_text"),
        ('{"id": "a", "text": 42}', "text_not_string"),
        ('{"id": "a", "text": "   "}', "empty_text"),
        ('{"id": "a", "text": "caf\ufffd au lait is fine"}', "invalid_encoding"),
        (json.dumps({"text": "word " * 300}), "too_long"),
    ],
)
def test_reject_reasons(raw, reason):
    out = classify_record(raw, T)
    assert out.reason == reason
    assert reason in REASONS
    assert out.detail
    assert out.raw_excerpt == raw[:200]
    assert out.text is None or reason == "empty_text"


def test_good_record_fields():
    raw = json.dumps({"id": 7, "text": "  " + GOOD + "\r\n", "url": "http://x", "metadata": {"lang": "en", "n": 3}})
    out = classify_record(raw, T)
    assert out.reason is None
    assert (out.source_id, out.url, out.text) == ("7", "http://x", GOOD)
    assert out.metadata == {"lang": "en", "n": "3"}
    assert out.n_words == 9 and out.n_chars == len(GOOD)
    assert out.text_hash and len(out.text_hash) == 64


def test_missing_id_stays_none():
    assert classify_record(json.dumps({"text": GOOD}), T).source_id is None


def test_split_reader_owns_each_line_once(tmp_path):
    """Byte ranges cut anywhere still yield every line exactly once; bad bytes become U+FFFD."""
    from fi_spark.ingest.splits import iter_split_lines, plan_splits

    lines = [f'{{"id": {i}, "text": "line {i} ' + "x" * (i % 37) + '"}' for i in range(500)]
    data = "\n".join(lines).encode() + b"\n" + b'{"id": "bad", "text": "caf\xe9"}\n'
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    for split_bytes in (7, 100, 1024, len(data)):
        got = [line for p, a, b in plan_splits([str(path)], split_bytes) for line in iter_split_lines(p, a, b)]
        assert got[:-1] == lines
        assert got[-1] == '{"id": "bad", "text": "caf\ufffd"}'
