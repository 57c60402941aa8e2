"""Hostile input for the ingest fuzz tests: hypothesis strategies and an Arrow check, shared by unit tests.

Every strategy aims at what a JSON line can carry that a clean pipeline never sees: lone surrogate escapes,
NUL / control / bidi / noncharacter escapes, BOMs, duplicate keys, deep nesting, wrong types, huge numbers,
undecodable bytes. ``arrow_safe`` is the check that failed in issue 14: a value Arrow cannot convert to a
string column crashes mapInPandas for the whole job.
"""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Reproducible in CI (same examples every run), modest counts: the whole fuzz set runs in well under 90 s.
FUZZ = settings(
    derandomize=True, max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
FUZZ_SLOW = settings(FUZZ, max_examples=25)  # per-example cost of ~0.1 s (HTML extraction)

GOOD = "The quick brown fox jumps over the lazy dog near the river bank on a sunny day. " * 2
ESCAPES = [
    "\\ud800", "\\udfff", "\\udbff", "\\ud83d\\ude00", "\\ude00\\ud83d", "\\u0000", "\\u0001", "\\u001f",
    "\\u007f", "\\u0085", "\\ufffe", "\\uffff", "\\ufdd0", "\\ufeff", "\\u202e", "\\u2066", "\\u200f",
    "\\u2028", "\\ufffd", "\\\\ud800", "\\\"", "\\n", "\\t",
]  # fmt: skip
RAW_ODDITIES = ["\x00", "\x07", "\x1b[31m", "\u202e", "\u2067", "\ufeff", "\ufffe", "\U0010ffff", "\r", "\x85"]


def json_string_body() -> st.SearchStrategy[str]:
    """The inside of a JSON string literal: plain text, raw odd characters and \\u escapes."""
    piece = st.one_of(
        st.text(max_size=12).map(lambda s: json.dumps(s)[1:-1]),
        st.sampled_from(ESCAPES),
        st.sampled_from(RAW_ODDITIES).map(lambda s: json.dumps(s, ensure_ascii=False)[1:-1]),
        st.just(GOOD),
    )
    return st.lists(piece, max_size=8).map("".join)


def json_value(depth: int = 3) -> st.SearchStrategy[str]:
    """JSON text of any type, built as text so that escapes reach the parser unchanged."""
    scalar = st.one_of(
        json_string_body().map(lambda s: f'"{s}"'),
        st.integers().map(str),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "null", "true", "false", "9" * 5000]),
        st.floats(allow_nan=False).map(repr),
    )
    if depth == 0:
        return scalar
    inner = json_value(depth - 1)
    return st.one_of(
        scalar,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(json_string_body(), inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f'"{k}": {v}' for k, v in kv) + "}"
        ),
    )


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def record_line() -> st.SearchStrategy[str]:
    """One JSON-line record: an object with the usual keys (any types), duplicate keys, odd framing."""
    key = st.sampled_from(["text", "id", "url", "metadata", "source", "template", "compatible_document_description"])
    fields = st.lists(st.tuples(key, json_value()), min_size=0, max_size=6)
    obj = fields.map(lambda kv: "{" + ", ".join(f'"{k}": {v}' for k, v in kv) + "}")
    framed = st.tuples(
        st.sampled_from(["", "\ufeff", " ", "\ufeff\ufeff", "\x00"]), obj, st.sampled_from(["", " ", "x"])
    )
    deep = st.integers(min_value=90, max_value=3000).map(lambda d: f'{{"text": "{GOOD}", "metadata": {nested(d)}}}')
    return st.one_of(
        framed.map("".join),
        json_value(),
        deep,
        st.binary(max_size=60).map(lambda b: b.decode("utf-8", "replace")),
        st.text(max_size=40),
    )


def arrow_safe(values: list[object], type_: pa.DataType = pa.string()) -> None:
    """Raise (as mapInPandas would, for the whole job) when Arrow cannot hold ``values`` as ``type_``."""
    pa.array(values, type=type_)
