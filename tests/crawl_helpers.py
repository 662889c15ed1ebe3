"""A misbehaving site for crawler tests: loops, drips, huge and bomb bodies, bad charsets, endless URL spaces.

Served by :func:`sitetune.crawl.localsite.serve` on 127.0.0.1; ``robots`` picks what /robots.txt answers.
"""

from __future__ import annotations

import gzip
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sitetune.crawl.localsite import serve

MB = 1024 * 1024
HUGE_BYTES = 50 * MB
PARA = "<p>Applicants need a bachelor's degree and IELTS 7.0 to be admitted to this programme.</p>"
_BOMB = gzip.compress(b"<html><body><h1>Bomb</h1>" + b" " * HUGE_BYTES, compresslevel=9)


def page(title: str, *links: str, text: str = PARA) -> bytes:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    head = f"<html><head><title>{title}</title></head>"
    return f"{head}<body><h1>{title}</h1>{text}<ul>{anchors}</ul></body></html>".encode()


ZURICH = "Zürich costs 5 € a day"
INDEX_LINKS = (
    "/loop-a", "/chain/0", "/drip", "/huge", "/huge-declared", "/bomb",
    "/cs/utf8-labelled-latin1-body", "/cs/latin1-labelled-utf8-body", "/cs/no-charset-meta",
    "/cs/bom-contradicts",
    "/calendar?month=0", "/grow?a=1", "/session?sid=abc123&page=1", "/flaky", "/always-503", "/rate-limited",
    "/binary.zip", "/private/secret", "/ok", "https://elsewhere.example/",
)


class NastyHandler(BaseHTTPRequestHandler):
    """Routes of the adversarial site; ``self.server.robots`` is "rules", "503" or "404"."""

    protocol_version = "HTTP/1.0"  # close-delimited bodies, so a huge page needs no Content-Length

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _count(self, key: str) -> int:
        server: Any = self.server
        with server.lock:
            server.hits[key] = server.hits.get(key, 0) + 1
            return int(server.hits[key])

    def do_GET(self) -> None:
        server: Any = self.server
        parts = urlsplit(self.path)
        path, query = parts.path, dict(parse_qsl(parts.query))
        self._count(self.path)
        if path == "/robots.txt":
            if server.robots == "503":
                self._send(503, b"busy", "text/plain")
            elif server.robots == "404":
                self._send(404, b"none", "text/plain")
            else:
                self._send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path == "/":
            self._send(200, page("Adversarial index", *INDEX_LINKS))
        elif path == "/ok":
            self._send(200, page("A fine page"))
        elif path in ("/loop-a", "/loop-b"):
            self._send(302, headers={"Location": "/loop-b" if path == "/loop-a" else "/loop-a"})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(301, headers={"Location": f"/chain/{n + 1}"})
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for byte in page("Drip"):
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1.0)
            except OSError:
                return
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            block = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
            try:
                for _ in range(HUGE_BYTES // len(block)):
                    self.wfile.write(block)
            except OSError:
                return
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
        elif path == "/bomb":
            self._send(200, _BOMB, headers={"Content-Encoding": "gzip"})
        elif path == "/cs/utf8-labelled-latin1-body":
            self._send(200, page("Wrong label", text=f"<p>{ZURICH}</p>").decode().encode("cp1252"),
                       "text/html; charset=utf-8")
        elif path == "/cs/latin1-labelled-utf8-body":
            self._send(200, page("Mislabelled", text=f"<p>{ZURICH}</p>"), "text/html; charset=iso-8859-1")
        elif path == "/cs/no-charset-meta":
            body = ('<html><head><meta charset="windows-1252"><title>Meta</title></head><body>'
                    f"<h1>Meta charset</h1><p>{ZURICH}</p></body></html>").encode("cp1252")
            self._send(200, body, "text/html")
        elif path == "/cs/bom-contradicts":
            self._send(200, b"\xef\xbb\xbf" + page("BOM wins", text=f"<p>{ZURICH}</p>"),
                       "text/html; charset=iso-8859-1")
        elif path == "/calendar":
            month = int(query.get("month", "0"))
            self._send(200, page(f"Events in month {month}", f"/calendar?month={month + 1}",
                                 text=f"<p>Open day number {month} for graduate applicants.</p>"))
        elif path == "/grow":
            params = dict(query)
            params[f"p{len(params)}"] = "1"
            self._send(200, page(f"Grow {len(query)}", "/grow?" + urlencode(params),
                                 text=f"<p>Filter page with {len(query)} filters.</p>"))
        elif path == "/session":
            n = int(query.get("page", "1"))
            nxt = f"/session?sid=s{self._count('sid')}&page={min(n + 1, 3)}"  # a fresh session id each time
            text = f"<p>Listing page {n} of the programmes.</p>"
            self._send(200, page(f"Session page {n}", nxt, text=text))
        elif path == "/flaky":
            if self._count("flaky") <= 2:
                self._send(503, b"try again", headers={"Retry-After": "0"})
            else:
                self._send(200, page("Flaky but fine"))
        elif path == "/always-503":
            self._send(503, b"down")
        elif path == "/rate-limited":
            self._send(429, b"slow down", headers={"Retry-After": "3600"})
        elif path == "/binary.zip":
            self._send(200, b"PK\x03\x04" + b"\x00" * 100, "application/zip")
        else:
            self._send(404, b"<html><body><h1>Not found</h1></body></html>")


def serve_nasty(robots: str = "rules") -> Any:
    """Context manager yielding the adversarial site's base URL."""
    import threading

    return serve(NastyHandler, robots=robots, hits={}, lock=threading.Lock())
