"""One raw query record (a JSON line) -> a clean query or a reject reason. Pure Python, no Spark.

ingest_queries turns JSONL, Parquet and CSV rows into the same JSON form first, so one set of
rules and reasons covers every format. The query id is a hash of the normalized text, which makes
exact duplicates share an id: the stage keeps one and rejects the rest as `duplicate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fi_spark.config.queries import QueriesConfig
from fi_spark.ingest.jsonline import PARSE_REASONS, parse_json_object, safe_excerpt
from fi_spark.text.normalize import normalize_text, text_hash

EXCERPT_CHARS = 200
REASONS = {
    **PARSE_REASONS,  # line-level: size, encoding, JSON, nesting, Unicode (shared with documents)
    "missing_text": "no text column (queries.text_column)",
    "not_text": "the text value is not a string (a number, list, object ...)",
    "empty": "blank after normalization",
    "too_short": "shorter than queries.min_chars",
    "too_long": "longer than queries.max_chars (rejected, not truncated)",
    "no_letters": "no alphabetic character at all",
    "duplicate": "same normalized text as a query already kept",
}


@dataclass
class QueryRecord:
    raw_hash: str
    query_id: str | None = None
    text: str | None = None
    source_id: str | None = None
    source: str | None = None
    n_chars: int = 0
    reason: str | None = None
    detail: str | None = None
    raw_excerpt: str | None = None


def query_id(text: str) -> str:
    """'q-' + 24 hex of the sha256 of the normalized text."""
    return "q-" + text_hash(text)[:24]


def classify_query(raw: str, cfg: QueriesConfig) -> QueryRecord:
    """Parse and check one record; the result has either a query_id or a reason."""
    out = QueryRecord(raw_hash=text_hash(raw))
    record, failed = parse_json_object(raw)
    if failed:
        return _reject(out, raw, *failed)
    assert record is not None
    out.source_id = _as_str(record.get(cfg.id_column)) if cfg.id_column else None
    out.source = _as_str(record.get(cfg.source_column)) if cfg.source_column else None
    if cfg.text_column not in record or record[cfg.text_column] is None:
        return _reject(out, raw, "missing_text", f"no {cfg.text_column!r} in keys {sorted(record)[:10]}")
    value = record[cfg.text_column]
    if not isinstance(value, str):
        return _reject(out, raw, "not_text", f"{cfg.text_column} is a {type(value).__name__}")
    text = normalize_text(value)
    if not text:
        return _reject(out, raw, "empty", "blank after normalization")
    if len(text) < cfg.min_chars:
        return _reject(out, raw, "too_short", f"{len(text)} < {cfg.min_chars} chars")
    if len(text) > cfg.max_chars:
        return _reject(out, raw, "too_long", f"{len(text)} > {cfg.max_chars} chars")
    if not any(ch.isalpha() for ch in text):
        return _reject(out, raw, "no_letters", repr(text[:80]))
    out.text, out.n_chars, out.query_id = text, len(text), query_id(text)
    return out


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _reject(out: QueryRecord, raw: str, reason: str, detail: str) -> QueryRecord:
    out.reason, out.detail, out.raw_excerpt = reason, detail, safe_excerpt(raw, EXCERPT_CHARS)
    return out
