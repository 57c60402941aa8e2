"""Builds small gzipped WARC files for tests (warcio's writer), shared by unit and integration tests."""

from __future__ import annotations

import io

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def build_warc(records: list[tuple[str, str, bytes, str]]) -> bytes:
    """A gzipped WARC with one response record per (url, http status line, body, content type)."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, status, body, content_type in records:
        headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=headers,
            warc_headers_dict={"WARC-Date": "2024-05-18T01:58:10Z"},
        )  # fmt: skip
        writer.write_record(record)
    return out.getvalue()
