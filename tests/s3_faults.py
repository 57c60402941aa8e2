"""A fault-injecting HTTP proxy in front of an S3 server (moto), for the S3 end-to-end tests.

Every request is forwarded to the upstream server unchanged (Host header and signature included), except
that some are answered by the proxy itself with the errors S3 sends under load, before anything reaches the
upstream, so a retried write is never applied twice:

- ``SlowDown`` (503, S3's XML error body): the first ``slowdown_attempts`` attempts of a request whose key
  hashes to 0 modulo ``every``, a burst of throttling, as S3 sends when a prefix is written too fast;
- ``InternalError`` (500): the first attempt of a request whose key hashes to 1 modulo ``every``;
- ``SlowDown`` on the first attempt of every request whose path ends with one of ``first_attempt_of``, so a
  test can be sure that given objects (a small pointer file, an input) were throttled once.

A request's key is its method, path and query, so the choice is deterministic per request and a retry (the
same key again) eventually passes. ``counts`` says how many of each were sent and ``faulted_paths`` which
paths got one, so a test can check the faults were real; ``access_keys`` holds the access key id of every
signed request (from its SigV4 Authorization header). Threaded (``ThreadingHTTPServer``), HTTP/1.1
keep-alive towards clients, one upstream connection per forwarded request.
"""

from __future__ import annotations

import http.client
import re
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERRORS = {
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}


def error_body(code: str, resource: str) -> bytes:
    """S3's XML error document for `code` (SlowDown, InternalError) on `resource`."""
    message = ERRORS[code][1]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
        "<RequestId>FIFAULTPROXY0001</RequestId><HostId>fi-spark-test-proxy</HostId></Error>"
    ).encode()


class FaultyS3Proxy:
    """``with FaultyS3Proxy("http://127.0.0.1:PORT") as proxy:`` -- point S3 clients at ``proxy.url``."""

    def __init__(
        self, upstream: str, every: int = 9, slowdown_attempts: int = 3, first_attempt_of: tuple[str, ...] = ()
    ):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.every = every
        self.slowdown_attempts = slowdown_attempts
        self.first_attempt_of = first_attempt_of
        self.counts: Counter[str] = Counter()
        self.faulted_paths: set[str] = set()
        self.access_keys: set[str] = set()
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, method: str, target: str, authorization: str = "") -> str | None:
        """The error to answer this attempt of (method, path?query) with, or None to forward it."""
        key = f"{method} {target}"
        path = target.split("?", 1)[0]
        bucket = zlib.crc32(key.encode()) % self.every if self.every else -1  # every=0: no hashed faults
        signer = _CREDENTIAL.search(authorization)
        with self._lock:
            self._attempts[key] += 1
            attempt = self._attempts[key]
            self.counts["requests"] += 1
            if signer:
                self.access_keys.add(signer.group(1))
            code = None
            if (bucket == 0 and attempt <= self.slowdown_attempts) or (
                path.endswith(self.first_attempt_of) and attempt == 1
            ):
                code = "SlowDown"
            elif bucket == 1 and attempt == 1:
                code = "InternalError"
            if code:
                self.counts[code] += 1
                self.faulted_paths.add(path)
            return code

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet: thousands of requests per run
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()  # read first, always: the connection stays usable after an injected error
                code = proxy.fault_for(self.command, self.path, self.headers.get("Authorization", ""))
                if code:
                    status, payload = ERRORS[code][0], error_body(code, self.path.split("?", 1)[0])
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    if status == 503:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            conn.putheader(name, value)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        if name.lower() not in _HOP_BY_HOP and not (name.lower() == "content-length"):
                            self.send_header(name, value)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
