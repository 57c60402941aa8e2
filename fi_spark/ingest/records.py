"""Turning one raw input record (a JSON line) into a clean document row, or a reason why not.

Pure Python, no Spark: ``classify_record`` is applied per row inside mapInPandas by prepare_corpus,
and is tested on its own. Parquet input is first turned into the same JSON form, so both formats
share one set of rules and one set of reject reasons (fi_spark.ingest.quality.REASONS).

The line-level rules (reader rejects, size, encoding, JSON, nesting, Unicode) are fi_spark.ingest.jsonline's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fi_spark.ingest.jsonline import EXCERPT_CHARS, parse_json_object, safe_excerpt
from fi_spark.ingest.quality import QualityThresholds, check_quality
from fi_spark.text.normalize import count_words, normalize_text, text_hash

__all__ = ["EXCERPT_CHARS", "Classified", "classify_record", "parse_json_object"]

PRE_NORMALIZE_FACTOR = 2  # texts over this many times max_chars are too_long before normalizing (cost cap)


@dataclass
class Classified:
    """One input record after parsing, normalization and the basic checks."""

    source_id: str | None = None
    url: str | None = None
    text: str | None = None
    text_hash: str | None = None  # of the normalized text; None when there is no usable text
    raw_hash: str = ""  # of the raw record, to order otherwise identical rows deterministically
    n_chars: int = 0
    n_words: int = 0
    metadata: dict[str, str] | None = None
    reason: str | None = None
    detail: str | None = None
    raw_excerpt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def classify_record(raw: str, thresholds: QualityThresholds) -> Classified:
    """Parse a JSON line with ``text`` (required), ``id``, ``url``, ``metadata`` (optional) and check it."""
    out = Classified(raw_hash=text_hash(raw))
    record, failed = parse_json_object(raw)
    if failed:
        return _reject(out, raw, *failed)
    assert record is not None
    out.source_id = _as_id(record.get("id"))
    out.url = record.get("url") if isinstance(record.get("url"), str) else None
    out.metadata = _as_metadata(record.get("metadata"))
    if "text" not in record or record["text"] is None:
        return _reject(out, raw, "missing_text", f"keys: {sorted(record)[:10]}")
    if not isinstance(record["text"], str):
        return _reject(out, raw, "text_not_string", f"text is a {type(record['text']).__name__}")
    if len(record["text"]) > PRE_NORMALIZE_FACTOR * thresholds.max_chars:
        # Normalizing costs ~0.3 s per million characters; a text this long cannot shrink under max_chars
        # unless most of it is whitespace, so it is rejected before that cost is paid.
        n = len(record["text"])
        return _reject(out, raw, "too_long", f"{n} characters before normalization > max_chars {thresholds.max_chars}")
    text = normalize_text(record["text"])
    out.text, out.n_chars, out.n_words = text, len(text), count_words(text)
    failed = check_quality(text, out.n_words, thresholds)
    if failed:
        out.text = None  # rejected texts are not kept (a 5 MB document must not travel further)
        return _reject(out, raw, *failed)
    out.text_hash = text_hash(text)
    return out


def _reject(out: Classified, raw: str, reason: str, detail: str) -> Classified:
    out.reason, out.detail, out.raw_excerpt = reason, detail, safe_excerpt(raw)
    return out


def _as_id(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _as_metadata(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in value.items()}
