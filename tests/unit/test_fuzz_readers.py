"""Property-based fuzzing of the file readers (JSONL / gzip line reader, CSV, WARC / WET, HTML extraction):
random bytes, truncation and corruption at any point never crash a reader; damage becomes a counted reject."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fi_spark.ingest.csv_rows import iter_csv_records
from fi_spark.ingest.html import MAX_HTML_TAGS
from fi_spark.ingest.jsonline import parse_json_object
from fi_spark.ingest.splits import iter_split_lines, plan_splits
from fi_spark.ingest.warc import WARC_REASONS, iter_warc_documents
from tests.hostile import FUZZ, FUZZ_SLOW, GOOD, arrow_safe
from tests.warc_builder import build_warc

LINES = [json.dumps({"id": i, "text": f"{GOOD} {i}"}) for i in range(40)]
PLAIN = ("\n".join(LINES) + "\n").encode()
GZ = gzip.compress(PLAIN)
PAGE = f"<html><body><article><p>{GOOD}</p></article></body></html>".encode()
WARC = build_warc([(f"https://example.org/{i}", "200 OK", PAGE, "text/html") for i in range(3)])


def read_all(path: Path, split_bytes: int = 1 << 30, max_line: int = 1 << 20) -> list[str]:
    return [line for p, a, b in plan_splits([str(path)], split_bytes) for line in iter_split_lines(p, a, b, max_line)]


def reason(value: str) -> str | None:
    failed = parse_json_object(value)[1]
    return failed[0] if failed else None


@FUZZ
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_line_reader_on_random_bytes(tmp_path_factory, data: bytes, split_bytes: int) -> None:
    """Random bytes, cut into any byte ranges: every line exactly once, each a string Arrow accepts."""
    path = tmp_path_factory.mktemp("r") / "x.jsonl"
    path.write_bytes(data)
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the file ends with a newline (or is empty)
    assert read_all(path, split_bytes) == [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines]
    arrow_safe(read_all(path, split_bytes))


@FUZZ
@given(st.integers(min_value=0, max_value=len(GZ)), st.integers(min_value=0, max_value=255))
def test_gzip_truncated_or_corrupted_anywhere(tmp_path_factory, cut: int, flip: int) -> None:
    """A gzip file cut or corrupted at any byte: the intact lines, then at most one unreadable_input reject."""
    data = bytearray(GZ[:cut])
    if flip and data:
        data[flip * 7 % len(data)] ^= flip
    path = tmp_path_factory.mktemp("g") / "x.jsonl.gz"
    path.write_bytes(bytes(data))
    got = read_all(path)
    arrow_safe(got)
    reasons = [reason(line) for line in got]
    assert "unreadable_input" not in reasons[:-1]  # the damage ends the file: one reject, last
    intact = [line for line, r in zip(got, reasons) if r != "unreadable_input"]
    if cut == len(GZ) and not flip:
        assert intact == LINES and "unreadable_input" not in reasons
    elif not flip:
        assert intact == LINES[: len(intact)]  # a truncated stream yields a clean prefix


def test_overlong_line_is_skipped_not_held(tmp_path: Path) -> None:
    """A line over the cap becomes one record_too_large reject; the lines around it are read normally."""
    path = tmp_path / "big.jsonl"
    big = b'{"id": "big", "text": "' + b"x" * 3_000_000 + b'"}\n'
    path.write_bytes(PLAIN + big + PLAIN)
    got = read_all(path, split_bytes=1 << 20, max_line=1 << 20)  # splits start inside the big line too
    assert got[: len(LINES)] == LINES and got[-len(LINES) :] == LINES and len(got) == 2 * len(LINES) + 1
    detail = f"{len(big)} bytes > {1 << 20} per line (not parsed)"
    assert parse_json_object(got[len(LINES)])[1] == ("record_too_large", detail)


CSV_HEAD = b"id,text,source\n"
CSV_ROWS = b'1,"How do I bake, say, bread?",a\n2,"Line one\nline two ""quoted""",b\n3,plain question here,c\n'


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xef\xbb\xbf"]))
def test_csv_reader_on_random_bytes(tmp_path_factory, data: bytes, bom: bytes) -> None:
    """Any bytes after a header: no crash; each row is a JSON object or a malformed_csv reject, Arrow-safe."""
    path = tmp_path_factory.mktemp("c") / "q.csv"
    path.write_bytes(bom + CSV_HEAD + CSV_ROWS + data)
    got = list(iter_csv_records(str(path)))
    arrow_safe(got)
    assert [json.loads(v)["id"] for v in got[:3]] == ["1", "2", "3"]
    for value in got:
        assert reason(value) in (None, "malformed_csv", "invalid_encoding")


def test_csv_ragged_rows_and_truncated_gzip(tmp_path: Path) -> None:
    """Rows with too few/many fields are malformed_csv rejects; a cut .csv.gz ends with unreadable_input."""
    path = tmp_path / "q.csv"
    path.write_bytes(CSV_HEAD + b"4,too few\n5,too,many,fields\n\n" + CSV_ROWS)
    got = list(iter_csv_records(str(path)))
    assert [reason(v) for v in got] == ["malformed_csv", "malformed_csv", None, None, None]
    assert json.loads(got[3])["text"] == 'Line one\nline two "quoted"'
    gz = tmp_path / "q.csv.gz"
    gz.write_bytes(gzip.compress(CSV_HEAD + CSV_ROWS * 50)[:-30])
    assert reason(list(iter_csv_records(str(gz)))[-1]) == "unreadable_input"


def assert_warc_rows(docs: list) -> None:
    for doc in docs:
        assert doc.status == "ok" or doc.status in WARC_REASONS
        line = doc.to_json()
        arrow_safe([line])
        failed = parse_json_object(line)[1]
        assert failed is None or failed[0] == "invalid_encoding"  # a page whose bytes were not its charset
    assert [d.status for d in docs].count("unreadable") <= 1


@FUZZ
@given(st.integers(min_value=0, max_value=len(WARC)), st.integers(min_value=0, max_value=255))
def test_warc_truncated_or_corrupted_anywhere(cut: int, flip: int) -> None:
    """A WARC cut or corrupted at any byte: documents before the damage, then at most one unreadable row."""
    data = bytearray(WARC[:cut])
    if flip and data:
        data[flip * 13 % len(data)] ^= flip
    docs = list(iter_warc_documents(io.BytesIO(bytes(data)), extractor="resiliparse"))
    assert_warc_rows(docs)
    if cut == len(WARC) and not flip:
        assert [d.status for d in docs] == ["ok"] * 3


@FUZZ
@given(st.binary(max_size=500))
def test_warc_reader_on_random_bytes(data: bytes) -> None:
    """Random bytes, gzipped or not, are one unreadable row (or nothing for an empty file), never a crash."""
    for blob in (data, gzip.compress(data)):
        docs = list(iter_warc_documents(io.BytesIO(blob), extractor="resiliparse"))
        assert_warc_rows(docs)
        assert [d.status for d in docs] in ([], ["unreadable"])


TAGS = st.sampled_from(["div", "p", "span", "table", "tr", "td", "b", "script", "style", "a", "ul", "li", "nav", "!--"])


ODD_BYTES = [b"&amp;", b"&#0;", b"&#xD800;", b"&bogus;", b"\x00", b"\xff\xfe", b"]]>"]


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    """Tag soup: random nesting (unclosed, misnested), attributes, entities, odd characters, some text."""
    parts = [b"<html><body>"]
    for _ in range(draw(st.integers(min_value=0, max_value=30))):
        tag = draw(TAGS)
        kind = draw(st.integers(min_value=0, max_value=5))
        if kind == 0:
            parts.append(f'<{tag} {draw(st.text(max_size=15))}="{draw(st.text(max_size=30))}">'.encode())
        elif kind == 1:
            parts.append(f"</{tag}>".encode())
        elif kind == 2:
            parts.append(
                draw(st.sampled_from([b"&amp;", b"&#0;", b"&#xD800;", b"&bogus;", b"\x00", b"\xff\xfe", b"]]>"]))
            )
        elif kind == 3:
            parts.append(f"<{tag}>".encode() * draw(st.integers(min_value=1, max_value=400)))
        else:
            parts.append(draw(st.sampled_from([GOOD, "текст", "\u202e", "😀"])).encode())
    return b"".join(parts)


@FUZZ_SLOW
@given(html_pages(), st.sampled_from(["trafilatura", "resiliparse"]))
def test_html_extraction_on_tag_soup(page: bytes, extractor: str) -> None:
    """Any tag soup inside a WARC response: one row, ok or a known reason, never a crash."""
    docs = list(iter_warc_documents(io.BytesIO(build_warc([("https://x.org/", "200 OK", page, "text/html")])),
                                    extractor=extractor))  # type: ignore[arg-type]  # fmt: skip
    assert len(docs) == 1
    assert_warc_rows(docs)


def test_html_bombs_are_bounded() -> None:
    """Pages of many tags are rejected before extraction; deep nesting and huge attributes come back fast."""
    many = b"<html><body>" + b"<p>x</p>" * (MAX_HTML_TAGS // 2 + 1)
    deep = b"<html><body>" + b"<div>" * 40_000 + f"<p>{GOOD}</p>".encode()
    attr = b"<html><body><a href='" + b"x" * 1_500_000 + b"'>" + f"<p>{GOOD}</p>".encode() + b"</a>"
    records = [("https://x.org/many", "200 OK", many, "text/html"), ("https://x.org/deep", "200 OK", deep, "text/html"),
               ("https://x.org/attr", "200 OK", attr, "text/html")]  # fmt: skip
    docs = list(iter_warc_documents(io.BytesIO(build_warc(records))))
    assert [d.status for d in docs] == ["too_large", "no_main_text", "ok"]
    assert docs[0].detail == f"{MAX_HTML_TAGS + 4} tags > {MAX_HTML_TAGS} (extraction time grows with tags)"
