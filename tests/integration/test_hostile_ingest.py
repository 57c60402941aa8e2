"""Hostile files through prepare_corpus, ingest_queries and import_templates on the embedded engine (issue 14):
no crash, literal reject counts per reason, and records read = kept + duplicates + rejects."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import functions as F

from fi_spark.engine import Engine
from fi_spark.genericize import import_templates
from fi_spark.ingest import ingest_queries, prepare_corpus
from fi_spark.schemas import DOC_REJECTS, DOCUMENTS, QUERY_REJECTS, TEMPLATE_REJECTS
from fi_spark.stages.base import StageContext
from tests.hostile import nested
from tests.warc_builder import build_warc

A = "Agriculture is the practice of cultivating plants and livestock. It was key to the rise of civilization."
B = "The Danube is Europe's second-longest river, flowing through ten countries into the Black Sea today."
C = "Mount Everest is Earth's highest mountain above sea level, located in the Himalayas on the border."
D = "A document whose key appears twice keeps the last value, as Python's JSON parser and most others do."
E = "Controls\u0000 and bidi \u202e marks inside a text are handled by normalization, not by the parser here."
F_ = "An escaped backslash before u-d-8-0-0 is literal text and must be kept as it is: \\ud800 in the text."


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


HUGE = line({"id": "huge", "text": "lorem ipsum dolor " * 2_900_000})


def hostile_documents(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        line({"id": "a", "text": A}),  # kept
        line({"id": "a-copy", "text": A}),  # duplicate (exact)
        b'{"id": "s1", "text": "' + A.encode() + b' \\ud800"}',  # invalid_unicode: the issue-14 crash
        b'{"\\udc00": 1, "text": "' + A.encode() + b'"}',  # invalid_unicode (a key)
        b'{"id": "m", "text": "' + A.encode() + b'", "metadata": {"k": "\\ude00"}}',  # invalid_unicode (metadata)
        b'{"id": ' + b"9" * 5000 + b', "text": "x"}',  # malformed_json (Python's int-conversion limit)
        nested(5000).encode(),  # too_deep (past the parser's recursion limit)
        b'{"text": "' + B.encode() + b'", "metadata": {"k": ' + nested(150).encode() + b"}}",  # too_deep
        "\ufeff".encode() + line({"id": "b", "text": B}),  # kept: a leading BOM is dropped
        b'{"id": "latin1", "text": "caf\xe9 cr\xe8me"}',  # invalid_encoding
        ("\ufeff" + json.dumps({"id": "u16", "text": C})).encode("utf-16-le"),  # invalid_encoding (UTF-16)
        b"\x89PNG\r\x1a\x00\xff\xd8 random binary",  # invalid_encoding
        line({"id": "e", "text": E}),  # kept (controls removed by normalization)
        line({"id": "n1", "text": 42}),  # text_not_string
        line({"id": "n2", "text": ["a", "list"]}),  # text_not_string
        line({"id": "n3", "text": {"an": "object"}}),  # text_not_string
        line({"id": "n4", "text": None}),  # missing_text
        b'{"id": "d", "text": "short", "text": "' + D.encode() + b'"}',  # kept: duplicate keys, the last wins
        line({"id": "f", "text": F_}),  # kept
        b"[1, 2, 3]",  # not_an_object
        b'"a string"',  # not_an_object
        b"\x00fi-spark-reader-reject\x00bogus\x00x\x00y",  # malformed_json: a forged reader mark
        line({"id": "long", "text": "word " * 500_000}),  # too_long (2.5 MB, rejected before normalizing)
        HUGE,  # record_too_large (a 52 MB line)
        b"",  # blank: layout, not a record
    ]
    (folder / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cut = gzip.compress(line({"id": "lost", "text": D}) + b"\n")[:-12]
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(line({"id": "c", "text": C}) + b"\n") + cut)  # 2 members
    return folder


def test_prepare_corpus_on_hostile_jsonl(embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path):
    """Every hostile line is a document, a duplicate or a reject with its reason; the job never fails."""
    ctx = make_ctx(embedded_engine, ["prepare.min_chars=50", "prepare.min_words=5"])
    result = prepare_corpus.run(ctx, str(hostile_documents(tmp_path / "in")))
    assert result.rejected == {
        "invalid_unicode": 3, "malformed_json": 2, "too_deep": 2, "invalid_encoding": 3, "text_not_string": 3,
        "missing_text": 1, "not_an_object": 2, "too_long": 1, "record_too_large": 1, "unreadable_input": 1,
        "duplicate_exact": 1,
    }  # fmt: skip
    assert (result.rows_in, result.rows_out) == (26, 6)  # 25 lines (less 1 blank) + 2 from the cut gzip file
    kept = sorted(r.doc_id for r in ctx.store.read(DOCUMENTS).collect())
    assert kept == ["a", "b", "c", "d", "e", "f"]
    rejects = ctx.store.read(DOC_REJECTS)
    for row in rejects.collect():
        assert row.raw_excerpt is not None and len(row.raw_excerpt) <= 1200
        assert "\x00" not in row.raw_excerpt and "\u202e" not in row.raw_excerpt
    huge = rejects.filter(F.col("reason") == "record_too_large").first()
    assert huge.detail.startswith(f"{len(HUGE) + 1} bytes > ") and huge.raw_excerpt.startswith('{"id": "huge"')
    surrogate = rejects.filter(F.col("raw_excerpt").startswith('{"id": "s1"')).first()
    assert surrogate.reason == "invalid_unicode" and "U+D800" in surrogate.detail


def test_ingest_queries_on_hostile_csv_and_jsonl(embedded_engine: Engine, make_ctx: Callable[..., StageContext],
                                                 tmp_path: Path) -> None:  # fmt: skip
    """Ragged CSV rows, bad bytes, surrogates and wrong types are query rejects; queries + rejects = records."""
    csv = tmp_path / "q.csv"
    csv.write_bytes(
        b"\xef\xbb\xbfid,text,source\n"
        b'1,"How do I bake, say, bread?",a\n'
        b"2,too,many,fields\n"
        b"3\n"
        b'4,"caf\xe9 questions?",b\n'
        b'5,"How do I bake, say, bread?",c\n'
        b"\n"
        b'6,"What is a ""quoted"" word?",d\n'
        b'7,"unbalanced quote,e\n8,x,y\n'
    )
    ctx = make_ctx(embedded_engine)
    result = ingest_queries.run(ctx, str(csv))
    assert result.rejected == {"malformed_csv": 3, "invalid_encoding": 1, "duplicate": 1}
    assert (result.rows_in, result.rows_out) == (7, 2)

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_bytes(b"\n".join([
        line({"id": "a", "text": "What is the tallest mountain?"}),
        b'{"id": "b", "text": "What is \\udfff here?"}',
        b'{"id": ' + b"1" * 5000 + b', "text": "x"}',
        nested(3000).encode(),
        line({"id": "c", "text": ["a list"]}),
        "\ufeff".encode() + line({"id": "d", "text": "Why is the sky blue?"}),
        b"\xff\xfe binary",
    ]) + b"\n")  # fmt: skip
    out = make_ctx(embedded_engine, output=tmp_path / "out2")
    result = ingest_queries.run(out, str(jsonl))
    assert result.rejected == {"invalid_unicode": 1, "malformed_json": 1, "too_deep": 1, "not_text": 1,
                               "invalid_encoding": 1}  # fmt: skip
    assert (result.rows_in, result.rows_out) == (7, 2)
    excerpts = [r.raw_excerpt for r in out.store.read(QUERY_REJECTS).collect()]
    assert all(e is not None and len(e) <= 1200 for e in excerpts)


def test_import_templates_on_hostile_bank(embedded_engine: Engine, make_ctx: Callable[..., StageContext],
                                          tmp_path: Path) -> None:  # fmt: skip
    """Surrogates, huge numbers, deep nesting and bad bytes in a bank are malformed_row rejects, not a crash."""
    desc = "A recipe or cooking guide that explains how to prepare a dish step by step."
    bank = tmp_path / "bank.jsonl"
    bank.write_bytes(b"\n".join([
        line({"template": "How do I <fi>cook a dish</fi> at home?", "compatible_document_description": desc}),
        b'{"template": "How do I <fi>thing \\ud800</fi>?", "compatible_document_description": "a guide"}',
        b'{"template": ' + b"1" * 5000 + b"}",
        nested(2000).encode(),
        b'{"template": "caf\xe9 <fi>x</fi>"}',
        line({"template": 42, "compatible_document_description": desc}),
    ]) + b"\n")  # fmt: skip
    ctx = make_ctx(embedded_engine)
    result = import_templates.run(ctx, str(bank))
    assert result.rejected == {"malformed_row": 4, "empty_template": 1}
    assert (result.rows_in, result.rows_out) == (6, 1)
    details = sorted(
        r.detail.split(":")[0] for r in ctx.store.read(TEMPLATE_REJECTS).collect() if r.reason == "malformed_row"
    )
    assert details == ["invalid_encoding", "invalid_unicode", "malformed_json", "too_deep"]


def test_prepare_corpus_on_damaged_warc(embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path):
    """A truncated WARC and a file of random bytes: the pages before the damage, then one warc_unreadable each."""
    page = f"<html><body><article><p>{A}</p><p>{B}</p></article></body></html>".encode()
    good = build_warc([("https://x.org/1", "200 OK", page, "text/html")])
    second = build_warc([("https://x.org/2", "200 OK", page.replace(b"Agriculture", b"Farming"), "text/html")])
    folder = tmp_path / "warc"
    folder.mkdir()
    (folder / "cut.warc.gz").write_bytes(good + second[:20])  # the second record's gzip header, cut
    (folder / "noise.warc.gz").write_bytes(bytes(range(256)) * 8)
    ctx = make_ctx(embedded_engine, ["prepare.min_chars=50", "prepare.min_words=5", "web.extractor=resiliparse"])
    result = prepare_corpus.run(ctx, str(folder))
    assert result.rejected == {"warc_unreadable": 2}
    assert (result.rows_in, result.rows_out) == (3, 1)


def test_prepare_corpus_on_damaged_parquet(embedded_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path):
    """A Parquet file with a corrupt footer is one unreadable_input reject; the other file is read; wrong types
    and nulls in the text column are rejects with their reasons."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": [A, None, "\x00\u202e" + B]}), folder / "good.parquet")
    pq.write_table(pa.table({"id": ["n"], "text": [7]}), folder / "ints.parquet")
    (folder / "noise.parquet").write_bytes(bytes(range(256)) * 4)
    ctx = make_ctx(embedded_engine, ["prepare.min_chars=50", "prepare.min_words=5"])
    result = prepare_corpus.run(ctx, str(folder))
    assert result.rejected == {"unreadable_input": 1, "missing_text": 1, "text_not_string": 1}
    assert (result.rows_in, result.rows_out) == (5, 2)
    reject = ctx.store.read(DOC_REJECTS).filter(F.col("reason") == "unreadable_input").first()
    assert reject.raw_excerpt == "noise.parquet" and reject.detail.startswith("Parquet footer unreadable")


def test_truncated_gzip_on_the_classic_engine(local_engine: Engine, make_ctx: Callable[..., StageContext], tmp_path):
    """On the JVM a cut .jsonl.gz or .csv.gz failed Spark's reader and the job; now the lines before the damage
    are records and the damaged rest is one unreadable_input reject, as on the embedded engine."""
    whole = gzip.compress(line({"id": "c", "text": C}) + b"\n")
    cut = gzip.compress(line({"id": "lost", "text": D}) + b"\n")[:-12]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cut.jsonl.gz").write_bytes(whole + cut)
    ctx = make_ctx(local_engine, ["prepare.min_chars=50", "prepare.min_words=5", "tables.format=parquet"])
    result = prepare_corpus.run(ctx, str(folder))
    assert (result.rows_in, result.rows_out, result.rejected) == (2, 1, {"unreadable_input": 1})

    queries = tmp_path / "q.csv.gz"
    queries.write_bytes(gzip.compress(b"id,text\n1,What is the tallest mountain?\n") + gzip.compress(b"2,Why?\n")[:-12])
    out = make_ctx(local_engine, ["tables.format=parquet"], output=tmp_path / "out2")
    result = ingest_queries.run(out, str(queries))
    assert (result.rows_in, result.rows_out, result.rejected) == (2, 1, {"unreadable_input": 1})
