"""prepare_corpus end to end on both engines: bad input, dedup, ids, accounting, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from fi_spark.ingest import prepare_corpus
from fi_spark.schemas import CHUNKS, DOC_REJECTS, DOCUMENTS, DUPLICATES
from fi_spark.text.normalize import normalize_text, text_hash

A = "Agriculture is the practice of cultivating plants and livestock. It was key to the rise of civilization."
C1 = "The Danube is Europe's second-longest river, flowing through ten countries into the Black Sea today."
C2 = "Mount Everest is Earth's highest mountain above sea level, located in the Himalayas on the border."
NOID = "A document without an id gets one derived from its content, so that re-runs give the same id again."


def derived_id(text: str, k: int = 1) -> str:
    return "doc-" + text_hash(normalize_text(text))[:24] + ("" if k == 1 else f"-{k}")


def write_bad_input(folder: Path) -> Path:
    path = folder / "docs.jsonl"
    lines = [
        json.dumps({"id": "a", "text": A, "url": "https://example.org/a", "metadata": {"lang": "en"}}).encode(),
        json.dumps(
            {"id": "b", "text": "\ufeff " + A.replace(" ", "\u00a0 ", 3) + " \t"}
        ).encode(),  # same once normalized
        b'{"id": "broken", "text": "no closing quote}',
        b'{"id": "latin1", "text": "caf\xe9 cr\xe8me is a French phrase used in many menus around the world"}',
        json.dumps({"id": "empty", "text": " \n\t "}).encode(),
        json.dumps({"id": "huge", "text": "lorem ipsum dolor " * 300_000}).encode(),  # ~5.4 MB
        json.dumps({"id": "notext", "title": "where is the text?"}).encode(),
        json.dumps({"text": NOID}).encode(),
        json.dumps({"text": NOID}).encode(),
        json.dumps({"id": "c", "text": C1}).encode(),
        json.dumps({"id": "c", "text": C2}).encode(),
        b"   ",
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def rows(df, *cols):
    return sorted(tuple(r) for r in df.select(*cols).collect())


def test_bad_input_is_accounted_for_and_rerun_adds_nothing(any_engine, make_ctx, tmp_path):
    """Every record lands in exactly one table with a reason; a second run adds no rows."""
    # near-dedup off: this test pins the four tables of the basic path (test_near_dedup_prepare covers it)
    ctx = make_ctx(any_engine, ["prepare.min_chars=50", "prepare.min_words=5", "near_dedup.enabled=false"])
    path = write_bad_input(tmp_path)
    result = prepare_corpus.run(ctx, str(path))

    assert rows(ctx.store.read(DOCUMENTS), "doc_id") == sorted([("a",), ("c",), (derived_id(NOID),)])
    kept_c = ctx.store.read(DOCUMENTS).filter(F.col("doc_id") == "c").first()["text"]
    assert kept_c == min((C1, C2), key=text_hash), "the copy with the smallest text hash keeps the id"
    assert rows(ctx.store.read(DUPLICATES), "doc_id", "kept_id", "method") == sorted(
        [("b", "a", "exact"), (derived_id(NOID, 2), derived_id(NOID), "exact")]
    )
    rejects = rows(ctx.store.read(DOC_REJECTS), "doc_id", "reason")
    reasons = sorted(r for _, r in rejects)
    assert reasons == sorted(
        ["malformed_json", "invalid_encoding", "empty_text", "too_long", "missing_text", "duplicate_id"]
    )
    assert (
        ("empty", "empty_text") in rejects and ("huge", "too_long") in rejects and ("notext", "missing_text") in rejects
    )
    assert ("c", "duplicate_id") in rejects
    detail = ctx.store.read(DOC_REJECTS).filter(F.col("reason") == "too_long").first()["detail"]
    assert "max_chars" in detail

    assert result.rows_in == 11 and result.rows_out == 3
    assert result.rejected == {
        "malformed_json": 1,
        "invalid_encoding": 1,
        "empty_text": 1,
        "too_long": 1,
        "missing_text": 1,
        "duplicate_id": 1,
        "duplicate_exact": 2,
    }
    assert result.accounting_ok
    kept_doc = ctx.store.read(DOCUMENTS).filter(F.col("doc_id") == "a").first()
    assert (
        kept_doc["text"] == A and kept_doc["url"] == "https://example.org/a" and kept_doc["metadata"] == {"lang": "en"}
    )

    n_chunks = ctx.store.count(CHUNKS)
    assert n_chunks >= 3
    again = prepare_corpus.run(ctx, str(path))
    assert again.tables == {"documents": 0, "duplicates": 0, "doc_rejects": 0, "chunks": 0}
    assert (again.rows_in, again.rows_out) == (11, 3)
    assert ctx.store.count(DOCUMENTS) == 3 and ctx.store.count(CHUNKS) == n_chunks


def test_chunks_are_exact_slices_with_stable_ids(spark, embedded_engine, make_ctx, tmp_path):
    """Chunk text equals the document slice; ids are content hashes, so a fresh run reproduces them."""
    text = " ".join(f"Paragraph sentence {i} explains one more fact about rivers and their deltas." for i in range(80))
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "river", "text": text}) + "\n")
    ctx = make_ctx(embedded_engine, ["prepare.chunk_tokens=64", "prepare.chunk_overlap=8"])
    prepare_corpus.run(ctx, str(path))
    chunks = ctx.store.read(CHUNKS).orderBy("ordinal").collect()
    assert len(chunks) > 5
    assert [c["ordinal"] for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c["text"] == text[c["char_start"] : c["char_end"]] and c["n_tokens"] <= 64
    other = make_ctx(embedded_engine, ["prepare.chunk_tokens=64", "prepare.chunk_overlap=8"], output=tmp_path / "o2")
    prepare_corpus.run(other, str(path))
    assert rows(other.store.read(CHUNKS), "chunk_id") == rows(ctx.store.read(CHUNKS), "chunk_id")


def test_parquet_input_and_incremental_dedup(embedded_engine, make_ctx, tmp_path):
    """Parquet input works; a later run's copy of a stored document is recorded as its duplicate."""
    spark = embedded_engine.spark
    first = tmp_path / "first.parquet"
    spark.createDataFrame([("p1", A), ("p2", C1)], "id string, text string").write.parquet(str(first))
    ctx = make_ctx(embedded_engine, ["prepare.min_chars=50", "prepare.min_words=5"])
    assert prepare_corpus.run(ctx, str(first)).rows_out == 2
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps({"id": "p0-late", "text": C1}) + "\n" + json.dumps({"id": "p3", "text": C2}) + "\n")
    result = prepare_corpus.run(ctx, str(second))
    # "p0-late" sorts before "p2", but p2 is already published: stored documents always survive.
    assert rows(ctx.store.read(DUPLICATES), "doc_id", "kept_id") == [("p0-late", "p2")]
    assert (result.rows_in, result.rows_out) == (2, 1)
    assert rows(ctx.store.read(DOCUMENTS), "doc_id") == [("p1",), ("p2",), ("p3",)]


def test_parquet_without_text_column_is_a_clear_error(embedded_engine, make_ctx, tmp_path):
    from fi_spark.ingest.documents import InputError

    bad = tmp_path / "bad.parquet"
    embedded_engine.spark.createDataFrame([("x", "y")], "id string, body string").write.parquet(str(bad))
    with pytest.raises(InputError, match="`text` column"):
        prepare_corpus.run(make_ctx(embedded_engine), str(bad))


def test_sample_data_exact_duplicates(embedded_engine, make_ctx, shared_data):
    """The dev sample's four known exact-duplicate pairs are found, and nothing else is dropped."""
    ctx = make_ctx(embedded_engine)
    result = prepare_corpus.run(ctx, str(shared_data / "documents.jsonl"))
    assert rows(ctx.store.read(DUPLICATES), "doc_id", "kept_id") == [
        ("lee-background-112", "lee-background-104"),
        ("lee-background-119", "lee-background-115"),
        ("lee-background-120", "lee-background-117"),
        ("lee-background-236", "lee-background-230"),
    ]
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (500, 496, 4)
