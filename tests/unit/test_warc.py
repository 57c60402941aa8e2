"""WARC/WET reading and HTML main-text extraction (fi_spark.ingest.warc, fi_spark.ingest.html)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fi_spark.ingest.html import extract_main_text
from fi_spark.ingest.warc import WARC_REASONS, is_warc_path, iter_warc_documents, warc_json_lines
from tests.warc_builder import build_warc

ARTICLE = (
    "<html><head><title>Mill history</title></head><body><nav><a href='/'>Home</a> <a href='/shop'>Shop</a></nav>"
    "<article><h1>The old mill</h1><p>The river town grew slowly during the nineteenth century, as merchants moved "
    "their warehouses closer to the new railway station and built a mill by the water.</p><p>Historians still argue "
    "about why the mill closed in 1911; some point to the flood of that spring, others to the price of wool.</p>"
    "</article><footer>Copyright 2024 Example Town. All rights reserved.</footer></body></html>"
)


_warc = build_warc


def test_response_records_become_documents_with_url_date_and_type():
    data = _warc([("https://example.org/mill", "200 OK", ARTICLE.encode(), "text/html; charset=utf-8")])
    docs = list(iter_warc_documents(io.BytesIO(data)))
    assert len(docs) == 1
    doc = docs[0]
    assert (doc.url, doc.crawl_date, doc.content_type, doc.status) == (
        "https://example.org/mill", "2024-05-18T01:58:10Z", "text/html; charset=utf-8", "ok",
    )  # fmt: skip
    assert "closed in 1911" in doc.text and "All rights reserved" not in doc.text
    assert doc.record_id and "urn:uuid" not in doc.record_id


def test_unusable_responses_are_kept_as_rows_with_a_status():
    """Non-200, non-text, oversized and empty pages yield rows with a status (to be rejected), never vanish."""
    data = _warc(
        [
            ("https://example.org/missing", "404 Not Found", b"<html>gone</html>", "text/html"),
            ("https://example.org/logo.png", "200 OK", b"\x89PNG....", "image/png"),
            ("https://example.org/big", "200 OK", ARTICLE.encode() * 50, "text/html"),
            ("https://example.org/empty", "200 OK", b"<html><body></body></html>", "text/html"),
            (
                "https://example.org/notes.txt",
                "200 OK",
                "Plain caf\u00e9 notes".encode("latin-1"),
                "text/plain; charset=latin-1",
            ),
        ]
    )
    docs = list(iter_warc_documents(io.BytesIO(data), max_html_bytes=5_000))
    assert [d.status for d in docs] == ["http_status", "not_text", "too_large", "no_main_text", "ok"]
    assert docs[0].detail == "HTTP 404" and docs[1].detail == "image/png"
    assert docs[4].text == "Plain caf\u00e9 notes"
    assert set(WARC_REASONS) == {"http_status", "not_text", "too_large", "no_main_text", "extract_failed", "unreadable"}


def test_json_lines_have_the_jsonl_input_shape():
    data = _warc([("https://example.org/mill", "200 OK", ARTICLE.encode(), "text/html")])
    line = json.loads(next(warc_json_lines(io.BytesIO(data))))
    assert set(line) == {"id", "url", "text", "metadata"}
    assert line["id"].startswith("warc-") and line["url"] == "https://example.org/mill"
    assert line["metadata"]["crawl_date"] == "2024-05-18T01:58:10Z"
    assert line["metadata"]["warc_status"] == "ok"


def test_warc_paths_are_recognized():
    assert (
        is_warc_path("s3://b/CC-MAIN-x.warc.gz") and is_warc_path("a/b.warc.wet.gz") and is_warc_path("c.warc.wat.gz")
    )
    assert not is_warc_path("docs.jsonl.gz") and not is_warc_path("warc_notes.txt")


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_extractors_keep_the_article_and_drop_navigation(extractor):
    text = extract_main_text(ARTICLE.encode(), extractor)
    assert "closed in 1911" in text
    assert "Shop" not in text


def test_unknown_extractor_names_the_choices():
    with pytest.raises(ValueError, match="trafilatura, resiliparse"):
        extract_main_text("<p>x</p>", "boilerpipe")  # type: ignore[arg-type]


# ---- real files (shared/data/web): a Common Crawl capture, its WET and WAT, and two quirky crawls
def test_real_common_crawl_warc_wet_and_wat(shared_data: Path):
    warc = shared_data / "web" / "warc"
    with open(warc / "whirlwind.warc.gz", "rb") as f:
        docs = list(iter_warc_documents(f))
    assert [(d.url, d.crawl_date, d.status) for d in docs] == [
        ("https://an.wikipedia.org/wiki/Escopete", "2024-05-18T01:58:10Z", "ok")
    ]
    assert "Escopete" in docs[0].text and docs[0].content_type.startswith("text/html")
    with open(warc / "whirlwind.warc.wet.gz", "rb") as f:
        wet = list(iter_warc_documents(f))
    assert [(d.record_type, d.status) for d in wet] == [("conversion", "ok")] and "Escopete" in wet[0].text
    with open(warc / "whirlwind.warc.wat.gz", "rb") as f:
        assert list(iter_warc_documents(f)) == []  # metadata only: no documents


def test_real_quirky_crawls_are_read_whole(shared_data: Path):
    """ClueWeb-style records (invalid dates, gzip Content-Encoding, EUC-JP) all decode; none is lost."""
    warc = shared_data / "web" / "warc"
    with open(warc / "resiliparse-clueweb-quirk.warc.gz", "rb") as f:
        docs = list(iter_warc_documents(f, "resiliparse"))
    assert len(docs) == 29 and all(d.status == "ok" for d in docs)
    assert docs[0].crawl_date == "2008-10-294T05:21:46-0700"  # kept verbatim, invalid as it is
    assert "PORTER" in docs[0].text and "ヘッドポーター" in docs[0].text
    with open(warc / "resiliparse-warcfile.warc.gz", "rb") as f:
        assert len(list(iter_warc_documents(f, "resiliparse"))) == 16  # 16 responses; requests/metadata skipped


def test_trafilatura_finds_gold_snippets_on_real_pages(shared_data: Path):
    gold = json.loads((shared_data / "web" / "gold_snippets.json").read_text(encoding="utf-8"))
    found = total = 0
    for url, entry in list(gold.items())[:6]:
        text = " ".join(
            extract_main_text((shared_data / "web" / entry["path"]).read_bytes(), "trafilatura", url).split()
        )
        found += sum(" ".join(s.split()) in text for s in entry["with"])
        total += len(entry["with"])
    assert found / total >= 0.8
