"""prepare_corpus with WARC input, web quality filters and MinHash near-dedup, on both engines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from fi_spark.ingest import prepare_corpus
from fi_spark.schemas import DOC_REJECTS, DOCUMENTS, DUP_CLUSTERS, DUPLICATES
from tests.warc_builder import build_warc

SENTENCES = [
    "The river town grew slowly during the nineteenth century as merchants moved their warehouses.",
    "Most families kept small gardens behind their houses and sold vegetables at the market.",
    "Historians still argue about why the old mill closed in the spring of that year.",
    "Some point to the great flood, others to the falling price of wool across the region.",
    "Today the mill holds a museum, a cafe and a small library that opens three afternoons a week.",
    "Visitors can walk along the canal path and read the signs that tell the story of the workers.",
    "The school on the hill was built from the same grey stone as the church and the bridge.",
    "Every summer the town holds a fair with music, boat races and long tables of food outside.",
]
OTHER = [
    "Glaciers form where snow accumulates faster than it melts over many years and compacts into ice.",
    "As the ice thickens it begins to flow under its own weight, carving valleys and moving rocks.",
    "Scientists measure the speed of glaciers with stakes, satellites and careful repeated surveys.",
    "Many glaciers in the Alps have retreated by hundreds of meters during the last century alone.",
    "Meltwater from glaciers feeds rivers that supply drinking water and power for whole regions.",
    "When a glacier retreats it leaves behind moraines, lakes and polished bedrock along its path.",
]


def _page(paragraphs: list[str], nav: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head><title>Town</title></head><body><nav>{nav}</nav><article><h1>The town</h1>{body}</article>"
        "<footer>Copyright Example. All rights reserved.</footer></body></html>"
    ).encode()


def write_warc(path: Path) -> Path:
    records = [
        ("https://a.example/town", "200 OK", _page(SENTENCES, "Home | News"), "text/html; charset=utf-8"),
        (
            "https://b.example/town-copy",
            "200 OK",
            _page(SENTENCES[:-1] + [SENTENCES[-1] + " Extra."], "Start"),
            "text/html",
        ),
        ("https://c.example/glaciers", "200 OK", _page(OTHER, "Science"), "text/html"),
        ("https://d.example/gone", "404 Not Found", b"<html>missing</html>", "text/html"),
        ("https://e.example/logo.png", "200 OK", b"\x89PNG", "image/png"),
    ]
    path.write_bytes(build_warc(records))
    return path


@pytest.fixture
def on_engine(any_engine):
    """The engine under test, with pyspark's Connect/classic flag set to match it (both share this process)."""
    before = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    if any_engine.caps.spark_context:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    else:
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    yield any_engine
    if before is None:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    else:
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = before


def _ids(df) -> list[str]:
    return sorted(r[0] for r in df.select("doc_id").collect())


def test_warc_input_with_filters_and_near_dedup(on_engine, make_ctx, tmp_path):
    """A WARC crawl: pages become documents with url and date; unusable records and near-copies are accounted."""
    ctx = make_ctx(
        on_engine,
        [
            "near_dedup.enabled=true",
            "web.filters=[gopher_repetition,c4]",
            "prepare.min_chars=50",
            "prepare.min_words=5",
        ],
    )
    warc = write_warc(tmp_path / "crawl.warc.gz")
    result = prepare_corpus.run(ctx, str(warc))

    docs = {r.url: r for r in ctx.store.read(DOCUMENTS).collect()}
    assert set(docs) == {"https://a.example/town", "https://c.example/glaciers"} or set(docs) == {
        "https://b.example/town-copy",
        "https://c.example/glaciers",
    }
    town = next(r for url, r in docs.items() if "town" in url)
    assert town.metadata["crawl_date"] == "2024-05-18T01:58:10Z" and "All rights reserved" not in town.text
    rejects = {r.reason for r in ctx.store.read(DOC_REJECTS).collect()}
    assert rejects == {"warc_http_status", "warc_not_text"}
    dups = ctx.store.read(DUPLICATES).collect()
    assert [(d.method, d.kept_id == town.doc_id) for d in dups] == [("minhash", True)]
    assert 0.8 <= dups[0].similarity < 1.0
    clusters = ctx.store.read(DUP_CLUSTERS)
    assert sorted((r.doc_id == town.doc_id, r.kept) for r in clusters.collect()) == [(False, False), (True, True)]

    assert result.accounting_ok and result.rows_in == 5
    assert result.rejected["duplicate_near"] == 1
    assert result.metrics["near_dedup.cluster_size.2"] == 1
    assert result.metrics["near_dedup.removal_rate"] == pytest.approx(1 / 3, abs=1e-5)
    assert result.metrics["web.warc_reject_rate"] == pytest.approx(2 / 5)

    again = prepare_corpus.run(ctx, str(warc))
    assert again.tables == {name: 0 for name in again.tables}, "a re-run adds no rows"
    assert again.rejected == result.rejected


def test_jsonl_near_duplicates_and_web_filter_rejects(spark, embedded_engine, make_ctx, tmp_path):
    """JSONL input: a near-copy is removed (method minhash); a repetitive page and a German one are rejects."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    text = " ".join(SENTENCES)
    lines = [
        {"id": "t1", "text": text},
        {"id": "t2", "text": text.replace("nineteenth", "eighteenth")},
        {"id": "g1", "text": " ".join(OTHER)},
        {"id": "spam", "text": "\n".join(["Buy cheap shoes online today at our store"] * 8 + OTHER)},
        {
            "id": "de",
            "text": "Die Stadt am Fluss wuchs im neunzehnten Jahrhundert langsam, als die Kaufleute ihre "
            "Lagerhäuser näher an den neuen Bahnhof verlegten. Die meisten Familien hatten kleine Gärten.",
        },
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    ctx = make_ctx(
        embedded_engine, ["near_dedup.enabled=true", "web.filters=[gopher_repetition]", "web.languages=[en]"]
    )
    result = prepare_corpus.run(ctx, str(path))
    assert _ids(ctx.store.read(DOCUMENTS)) == ["g1", "t1"]
    rejects = sorted((r.doc_id, r.reason) for r in ctx.store.read(DOC_REJECTS).collect())
    assert rejects == [("de", "language"), ("spam", "gopher_dup_lines")]
    assertDataFrameEqual(
        ctx.store.read(DUPLICATES).select("doc_id", "kept_id", "method"),
        [Row(doc_id="t2", kept_id="t1", method="minhash")],
    )
    assert result.rejected == {"gopher_dup_lines": 1, "language": 1, "duplicate_near": 1}


def test_real_crawl_files(spark, embedded_engine, make_ctx, shared_data, tmp_path):
    """The real WARC/WET/WAT files of shared/data/web: every response/conversion record is accounted for."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    ctx = make_ctx(embedded_engine, ["web.extractor=resiliparse", "near_dedup.enabled=true"])
    result = prepare_corpus.run(ctx, str(shared_data / "web" / "warc"))
    assert result.accounting_ok
    assert result.rows_in == 1 + 1 + 16 + 29  # whirlwind WARC + WET, resiliparse warcfile, clueweb quirk
    urls = {r.url for r in ctx.store.read(DOCUMENTS).collect()}
    assert "https://an.wikipedia.org/wiki/Escopete" in urls
    # the WARC capture and the WET conversion of the same page are the same text up to boilerplate
    assert result.metrics["near_dedup.documents"] >= 2
