"""A misbehaving site for crawler tests: loops, drips, huge and bomb bodies, bad charsets, endless URL spaces.

Served by :func:`sitetune.crawl.localsite.serve` on 127.0.0.1; ``robots`` picks what /robots.txt answers
(see :data:`ROBOTS`; ``"away"`` redirects it to ``away``), ``/away`` redirects to ``away`` (another server,
an internal address), and every request's arrival time is recorded in ``times``.
"""

from __future__ import annotations

import gzip
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sitetune.crawl.localsite import serve
from sitetune.crawl.robots import ROBOTS_MAX_BYTES

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


# RFC 9309 in one file: the crawler's own group (matched by its product token, case-insensitively)
# replaces "*", wildcards and "$" anchor paths, and the longest matching rule wins.
RFC9309_ROBOTS = """User-agent: *
Disallow: /

User-agent: otherbot
Allow: /

User-agent: SiteTune
Disallow: /private/
Disallow: /*.pdf$
Disallow: /shop
Allow: /shop/open
"""
# Links of /rfc9309 with what RFC 9309 decides for the crawler (True: allowed).
RFC9309_LINKS = {
    "/ok": True,  # "*" disallows everything, but the crawler's own group does not
    "/private/secret": False,
    "/guide.pdf": False,  # /*.pdf$
    "/guide.pdf?download=1": True,  # "$" anchors the end: with a query string the rule no longer matches
    "/shop/closed": False,  # /shop
    "/shop/open/item": True,  # Allow: /shop/open is longer than Disallow: /shop
    "/go-private": False,  # allowed itself, but it redirects into /private/
}
CRAWL_DELAY_S = 0.4  # fractional on purpose: the standard library's robotparser reads only whole seconds
#: What /secret answers: stands for an internal service's answer that must never reach a corpus or a terminal.
SECRET = "internal-only-token-5f1c"


def _padded(rules: bytes, size: int) -> bytes:
    """``rules`` as the last lines of a robots.txt of exactly ``size`` bytes (a comment line before them)."""
    line = b"#" + b"x" * 98 + b"\n"
    full, rest = divmod(size - len(rules), len(line))
    last = b"#" + b"x" * (rest - 2) + b"\n" if rest >= 2 else b"\n" * rest
    return line * full + last + rules


#: What /robots.txt answers, by ``robots`` mode: (status, body).
ROBOTS: dict[str, tuple[int, bytes]] = {
    "rules": (200, b"User-agent: *\nDisallow: /private/\n"),
    "503": (503, b"busy"),
    "404": (404, b"none"),
    "429": (429, b"slow down"),
    "rfc9309": (200, RFC9309_ROBOTS.encode()),
    "delay": (200, f"User-agent: *\nCrawl-delay: {CRAWL_DELAY_S}\n".encode()),
    "huge-delay": (200, b"User-agent: *\nCrawl-delay: 1e9\n"),
    # The rule is the file's last line, so it applies only if the whole file was read.
    "at-cap": (200, _padded(b"User-agent: *\nDisallow: /private/\n", ROBOTS_MAX_BYTES)),
    "over-cap": (200, _padded(b"User-agent: *\nDisallow: /private/\n", ROBOTS_MAX_BYTES + 1)),
}


class NastyHandler(BaseHTTPRequestHandler):
    """Routes of the adversarial site; ``self.server.robots`` is a key of :data:`ROBOTS`."""

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
        with server.lock:
            server.times.append((time.monotonic(), self.path))
        self._count(self.path)
        if path == "/robots.txt" and server.robots == "away":
            self._send(302, headers={"Location": server.away + "/robots.txt"})
        elif path == "/robots.txt":
            status, body = ROBOTS[server.robots]
            self._send(status, body, "text/plain", headers={"Retry-After": "0"} if status == 429 else None)
        elif path == "/rfc9309":
            self._send(200, page("Robots rules", *RFC9309_LINKS))
        elif path in ("/shop/open/item", "/shop/closed", "/guide.pdf") or path.startswith("/private/"):
            self._send(200, page(f"Page at {path}"))  # robots.txt decides whether the crawler gets here
        elif path == "/go-private":
            self._send(302, headers={"Location": "/private/secret"})
        elif path == "/":
            self._send(200, page("Adversarial index", *INDEX_LINKS))
        elif path == "/ok":
            self._send(200, page("A fine page"))
        elif path == "/away":
            self._send(302, headers={"Location": server.away})
        elif path == "/secret":
            self._send(200, page("Internal service", text=f"<p>The access token is {SECRET}.</p>"))
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


def serve_nasty(robots: str = "rules", times: list[tuple[float, str]] | None = None, away: str = "") -> Any:
    """Context manager yielding the adversarial site's base URL; ``times`` collects (arrival, path).

    ``away`` is where ``/away`` (and ``/robots.txt`` when ``robots="away"``) redirects to.
    """
    import threading

    return serve(NastyHandler, robots=robots, hits={}, times=[] if times is None else times,
                 lock=threading.Lock(), away=away)
