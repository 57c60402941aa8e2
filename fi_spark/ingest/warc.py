"""WARC / WET files -> one document per page: url, crawl date, content type and extracted main text.

Reader: warcio (webrecorder). Measured against FastWARC on the five real files in
shared/data/web/warc: both read them, FastWARC in less time, but on the ClueWeb-style file it parsed
HTML as HTTP headers for some records (their bodies are gzip Content-Encoded) while warcio decoded
them; warcio also undoes chunked transfer and content encodings and keeps the charset of the
Content-Type header. Reading is not the cost here -- main-text extraction is ~100x slower than
parsing a record -- so the more forgiving reader wins.

Which records become documents: ``response`` records (WARC) whose HTTP status is 200 and whose content
type is HTML (main text extracted, fi_spark.ingest.html) or plain text (decoded), and ``conversion``
records (WET: already text). Request, metadata and warcinfo records are not documents and are skipped.
A response that cannot become a document (other status, other content type, page too large, no main
text) still yields a row with ``status`` != "ok", so prepare_corpus rejects it with a reason instead of
dropping it unseen.

Damaged input becomes rows too, never a failed task: a file warcio cannot parse further (random bytes,
a truncated gzip stream, garbage between records) ends with one ``unreadable`` row after the records
read before the damage; a page whose extraction raises is an ``extract_failed`` row; a WET text body over
``max_html_bytes`` is ``too_large`` like an HTML body. gzip is undone here (not inside warcio) because
warcio stops silently at a truncated gzip stream, which would drop the rest of a file unseen.

``warc_json_lines`` gives the same JSON-line shape as JSONL input ({"id", "url", "text", "metadata"}),
so prepare_corpus parses, normalizes and checks WARC pages with the same rules as every other input.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator

from fi_spark.ingest.html import MAX_HTML_TAGS, Extractor, count_tags, extract_main_text

HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
# status -> doc_rejects reason (prepare_corpus maps the empty texts these rows carry to these reasons)
WARC_REASONS = {
    "http_status": "warc_http_status",
    "not_text": "warc_not_text",
    "too_large": "warc_too_large",
    "no_main_text": "html_no_main_text",
    "extract_failed": "html_extract_failed",
    "unreadable": "warc_unreadable",
}


@dataclass(frozen=True)
class WarcDocument:
    record_id: str  # WARC-Record-ID without the <urn:uuid:...> wrapping
    url: str | None
    crawl_date: str | None  # WARC-Date as written (some crawls write invalid dates; kept verbatim)
    content_type: str | None
    record_type: str  # response | conversion | unreadable (the damaged rest of a file)
    text: str  # '' unless status == 'ok'
    status: str  # ok | http_status | not_text | too_large | no_main_text | extract_failed | unreadable
    detail: str = ""

    def to_json(self) -> str:
        metadata = {
            "crawl_date": self.crawl_date or "",
            "content_type": self.content_type or "",
            "warc_type": self.record_type,
            "warc_status": self.status,
        }
        if self.detail:
            metadata["warc_detail"] = self.detail
        return json.dumps(
            {"id": f"warc-{self.record_id}", "url": self.url, "text": self.text, "metadata": metadata},
            ensure_ascii=False,
        )


_ARC_DATE = re.compile(r"\d{14}")  # an ARC record header's archive-date, YYYYMMDDhhmmss


def iter_warc_documents(
    stream: IO[bytes], extractor: Extractor = "trafilatura", max_html_bytes: int = 2_000_000
) -> Iterator[WarcDocument]:
    """Documents of one WARC / WET stream (gzip or not), in file order; damage ends it with an unreadable row."""
    records = iter(ArchiveIterator(stream))
    read = 0
    while True:
        try:
            record = next(records)
            if record.format.startswith("arc") and not _ARC_DATE.fullmatch(
                record.rec_headers.get_header("archive-date") or ""
            ):
                # warcio reads bytes without a WARC header as an ARC record; a real one has a 14-digit date
                yield _unreadable(read, "not a WARC/WET file (no WARC record header)")
                return
            if record.rec_type not in ("response", "conversion"):
                continue
            read += 1
            doc = _document(record, extractor, max_html_bytes)
        except StopIteration:
            break
        except Exception as exc:  # warcio/gzip/zlib errors on a damaged file: the rest of it is one row
            yield _unreadable(read, f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        yield doc
    damage = _damage(stream)
    if damage:
        yield _unreadable(read, damage)


def _unreadable(read: int, why: str) -> WarcDocument:
    detail = f"after {read} record(s): {why}"
    return WarcDocument(f"unreadable-{read}", None, None, None, "unreadable", "", "unreadable", detail)


def _damage(stream: IO[bytes]) -> str | None:
    """Why a gzipped stream is truncated or corrupt (None when intact, not gzip, or not seekable).

    warcio ends quietly at a truncated gzip stream (it takes gzip's EOFError for the end of the file)
    and only warns on corrupt data, so the rest of such a file would vanish unseen. One more
    decompression pass costs about 1% of main-text extraction, and finds both.
    """
    if not stream.seekable():
        return None
    stream.seek(0)
    if stream.read(2) != b"\x1f\x8b":
        return None
    stream.seek(0)
    try:
        with gzip.GzipFile(fileobj=stream) as fh:
            while fh.read(1 << 20):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _document(record: Any, extractor: Extractor, max_html_bytes: int) -> WarcDocument:
    headers = record.rec_headers
    record_id = (headers.get_header("WARC-Record-ID") or "").strip("<>").removeprefix("urn:uuid:")
    url = headers.get_header("WARC-Target-URI")
    date = headers.get_header("WARC-Date")
    base = {"record_id": record_id, "url": url, "crawl_date": date, "record_type": record.rec_type}
    too_large = f"body > max_html_bytes {max_html_bytes}"
    if record.rec_type == "conversion":  # WET: the crawler already extracted the text
        content_type = headers.get_header("Content-Type") or "text/plain"
        body = record.content_stream().read(max_html_bytes + 1)
        if len(body) > max_html_bytes:
            return WarcDocument(**base, content_type=content_type, text="", status="too_large", detail=too_large)
        return WarcDocument(**base, content_type=content_type, text=body.decode("utf-8", "replace"), status="ok")
    http = record.http_headers
    status = http.get_statuscode() if http else None
    content_type = (http.get_header("Content-Type") if http else None) or headers.get_header("Content-Type")
    mime = (content_type or "").split(";")[0].strip().lower()
    if status != "200":
        return WarcDocument(**base, content_type=content_type, text="", status="http_status", detail=f"HTTP {status}")
    if mime not in HTML_TYPES + TEXT_TYPES:
        return WarcDocument(**base, content_type=content_type, text="", status="not_text", detail=mime or "none")
    body = record.content_stream().read(max_html_bytes + 1)
    if len(body) > max_html_bytes:
        return WarcDocument(**base, content_type=content_type, text="", status="too_large", detail=too_large)
    if mime in HTML_TYPES and count_tags(body) > MAX_HTML_TAGS:
        detail = f"{count_tags(body)} tags > {MAX_HTML_TAGS} (extraction time grows with tags)"
        return WarcDocument(**base, content_type=content_type, text="", status="too_large", detail=detail)
    if mime in HTML_TYPES:
        try:
            text = extract_main_text(body, extractor, url)
        except Exception as exc:  # an extractor bug on a hostile page: this page is a reject, not the task
            detail = f"{extractor}: {type(exc).__name__}: {str(exc)[:200]}"
            return WarcDocument(**base, content_type=content_type, text="", status="extract_failed", detail=detail)
    else:
        text = _decode(body, content_type)
    if not text.strip():
        return WarcDocument(**base, content_type=content_type, text="", status="no_main_text", detail=extractor)
    return WarcDocument(**base, content_type=content_type, text=text, status="ok")


def warc_json_lines(
    stream: IO[bytes], extractor: Extractor = "trafilatura", max_html_bytes: int = 2_000_000
) -> Iterator[str]:
    """``iter_warc_documents`` as JSON lines in the shape of JSONL input."""
    for doc in iter_warc_documents(stream, extractor, max_html_bytes):
        yield doc.to_json()


def is_warc_path(path: str) -> bool:
    name = path.lower()
    return name.endswith((".warc", ".warc.gz", ".wet", ".wet.gz", ".wat", ".wat.gz", ".arc", ".arc.gz"))


def _decode(body: bytes, content_type: str | None) -> str:
    charset = "utf-8"
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip("\"'")
    try:
        return body.decode(charset, "replace")
    except LookupError:  # an unknown charset name in the header
        return body.decode("utf-8", "replace")
