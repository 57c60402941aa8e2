"""One JSON line -> a JSON object, or a reason why not: the rules every JSON-line reader shares.

What a record must be (``parse_json_object``: documents, queries and template banks), checked in this
order, each failure a reject with a reason from ``PARSE_REASONS``:
1. not a reader reject: readers turn what they cannot hand over as a line (a line over
   ``MAX_RECORD_CHARS``, the damaged rest of a truncated gzip file, a CSV row with the wrong number of
   fields) into a marked value (``reader_reject``), so it is counted and rejected like any other record;
2. at most ``MAX_RECORD_CHARS`` characters (engines whose reader does not cap lines);
3. UTF-8: readers decode bytes with replacement characters, so a U+FFFD means undecodable bytes;
4. one leading byte-order mark is dropped (an encoding marker, not content: Windows editors write it);
5. JSON (Python's parser; duplicate keys: the last value wins, as in most parsers; ``NaN`` and
   ``Infinity`` are accepted as numbers), an object, nested at most ``MAX_DEPTH`` deep;
6. valid Unicode: a ``\\ud800``-style escape that decodes to a lone surrogate is valid JSON syntax but
   no Unicode text (UTF-8, Arrow, Parquet) can hold it. Such records are *rejected*, not repaired: the
   same content arriving as raw bytes is an ``invalid_encoding`` reject, and replacing it would store a
   text (and hash) that its author never wrote -- lone surrogates come from a producer that cut a UTF-16
   pair in half, so the text around them is damaged too.

Reject rows keep ``safe_excerpt(raw)``: at most ``EXCERPT_CHARS`` characters of the raw line, valid UTF-8,
with control, bidi-override and surrogate characters shown as escapes so a report cannot be garbled by them.
"""

from __future__ import annotations

import json
import re
from typing import Any

EXCERPT_CHARS = 200
MAX_RECORD_CHARS = 16 * 1024 * 1024  # per line; far above any useful document (prepare.max_chars: 1M)
MAX_DEPTH = 100  # nesting of objects/arrays; Python's parser itself stops near 1,000 (its recursion limit)
_REPLACEMENT = "\ufffd"
_BOM = "\ufeff"
_READER_MARK = "\x00fi-spark-reader-reject\x00"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# Reasons every JSON-line reader shares (documents, queries, template banks), in check order.
PARSE_REASONS = {
    "record_too_large": f"the line is longer than {MAX_RECORD_CHARS} characters (not parsed)",
    "unreadable_input": "a compressed file is truncated or corrupt: the rows before the damage are read, "
    "the rest of the file is this one reject",
    "malformed_csv": "a CSV row whose number of fields differs from the header",
    "invalid_encoding": "the input bytes are not valid UTF-8 (undecodable bytes were found)",
    "malformed_json": "the input line is not valid JSON",
    "not_an_object": "the JSON value is not an object",
    "too_deep": f"objects/arrays nested more than {MAX_DEPTH} deep",
    "invalid_unicode": "a \\u escape decodes to a lone surrogate, which no UTF-8 text can hold",
}
READER_REASONS = ("record_too_large", "unreadable_input", "malformed_csv")


def parse_json_object(raw: str) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """(record, None) for a JSON object line, else (None, (reason, detail)); shared by every JSONL reader."""
    if raw.startswith(_READER_MARK):
        reason, detail = _reader_reject_parts(raw)
        return None, (reason, detail)
    if len(raw) > MAX_RECORD_CHARS:
        return None, ("record_too_large", f"{len(raw)} characters > {MAX_RECORD_CHARS}")
    if _REPLACEMENT in raw:
        # The reader decoded the bytes as UTF-8 and replaced undecodable bytes with U+FFFD.
        return None, ("invalid_encoding", f"{raw.count(_REPLACEMENT)} undecodable byte sequence(s)")
    try:
        record = json.loads(raw.removeprefix(_BOM))
    except RecursionError:
        return None, ("too_deep", "nested deeper than the JSON parser's recursion limit")
    except ValueError as exc:  # JSONDecodeError, and integers over Python's 4,300-digit conversion limit
        return None, ("malformed_json", str(exc)[:200])
    if not isinstance(record, dict):
        return None, ("not_an_object", f"a JSON {type(record).__name__}")
    surrogates = _SURROGATE_ESCAPE.search(raw) is not None
    if surrogates or raw.count("{") + raw.count("[") > MAX_DEPTH:  # cheap tests first: most lines skip the walk
        failed = _check_structure(record, surrogates)
        if failed:
            return None, failed
    return record, None


def reader_reject(reason: str, detail: str, head: str) -> str:
    """The value a reader emits instead of a line it cannot hand over (``reason`` in READER_REASONS)."""
    assert reason in READER_REASONS, reason
    return f"{_READER_MARK}{reason}\x00{detail}\x00{head[:EXCERPT_CHARS]}"


def safe_excerpt(raw: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of a raw record, with unsafe characters escaped (valid UTF-8, bounded)."""
    if raw.startswith(_READER_MARK):
        raw = raw[len(_READER_MARK) :].split("\x00", 2)[-1]
    return _UNSAFE.sub(_escape, raw[:limit])


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _reader_reject_parts(raw: str) -> tuple[str, str]:
    parts = raw[len(_READER_MARK) :].split("\x00", 2)
    if len(parts) < 3 or parts[0] not in READER_REASONS:  # a line that merely starts like a reader mark
        return "malformed_json", "starts with a NUL character"
    return parts[0], safe_excerpt(parts[1], 500)


def _check_structure(record: dict[str, Any], check_surrogates: bool) -> tuple[str, str] | None:
    """too_deep / invalid_unicode, found by one iterative walk (no recursion: the input chooses the depth)."""
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                return "too_deep", f"nested more than {MAX_DEPTH} deep"
            for key, item in value.items():
                if check_surrogates and _SURROGATE.search(key):
                    return "invalid_unicode", f"lone surrogate in key {_escaped(key)}"
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                return "too_deep", f"nested more than {MAX_DEPTH} deep"
            stack.extend((item, depth + 1) for item in value)
        elif check_surrogates and isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                start = max(0, found.start() - 20)
                return "invalid_unicode", f"lone surrogate U+{ord(found.group()):04X} in {_escaped(value[start:])}"
    return None


def _escaped(value: str) -> str:
    return '"' + safe_excerpt(value, 60) + '"'
