"""A small real HTTP server for a folder of pages, on 127.0.0.1 with an ephemeral port.

Use it to crawl a site kept on disk (``make run`` crawls the bundled sample site this way) and in tests.
Files are served with ETag and Last-Modified and answer conditional requests with 304. A ``_site.json``
in the folder adds special routes::

    {"public_base": "https://www.example.org/",
     "routes": {"/old.html": {"redirect": "/new.html", "status": 301},
                "/gone.html": {"status": 404},
                "/busy.html": {"status": 503, "times": 1, "retry_after": 1},
                "/slow.html": {"delay_s": 1.5}}}

``status`` with ``times`` answers that status to the first ``times`` requests only, then serves the file.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import mimetypes
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sitetune.errors import InputError

SPEC_FILE = "_site.json"
_ROUTE_KEYS = frozenset({"redirect", "status", "times", "retry_after", "delay_s", "file"})


@dataclass(frozen=True)
class Route:
    """A special answer for one path (see the module docstring)."""

    redirect: str | None = None
    status: int | None = None
    times: int | None = None
    retry_after: int | None = None
    delay_s: float = 0.0
    file: str | None = None


@dataclass(frozen=True)
class SiteSpec:
    """A folder's ``_site.json``: its public base URL and special routes."""

    public_base: str | None = None
    routes: dict[str, Route] = field(default_factory=dict)


def load_site_spec(folder: Path) -> SiteSpec:
    """Read ``folder/_site.json`` (an empty spec when absent).

    Raises:
        InputError: ``folder`` is not a directory, or the spec is not valid JSON of the documented shape.
    """
    if not folder.is_dir():
        raise InputError("not a directory (expected a site folder with index.html)", path=str(folder))
    path = folder / SPEC_FILE
    if not path.is_file():
        return SiteSpec()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("routes", {}), dict):
        raise InputError("expected an object with a 'routes' object", path=str(path))
    routes = {}
    for route_path, options in raw.get("routes", {}).items():
        if not isinstance(options, dict) or not set(options) <= _ROUTE_KEYS:
            raise InputError(f"route options must be an object with keys from {sorted(_ROUTE_KEYS)}",
                             path=str(path), field=route_path)
        try:
            routes[route_path] = Route(**options)
        except TypeError as exc:
            raise InputError(str(exc), path=str(path), field=route_path) from exc
    base = raw.get("public_base")
    if base is not None and not isinstance(base, str):
        raise InputError("expected a string", path=str(path), field="public_base")
    return SiteSpec(public_base=base, routes=routes)


class SiteHandler(BaseHTTPRequestHandler):
    """Serves ``self.server.folder`` with the routes of ``self.server.spec`` (set by :func:`serve_site`)."""

    server_version = "sitetune-localsite/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test and job output clean
        """Log nothing (keeps test and job output clean)."""
        pass

    def do_HEAD(self) -> None:
        """Answer HEAD as GET (the body is not sent)."""
        self.do_GET()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        """Serve a file of the folder, or the site's special routes."""
        server: Any = self.server
        path = unquote(urlsplit(self.path).path)
        route: Route | None = server.spec.routes.get(path)
        with server.lock:
            server.hits[path] += 1
            hits = server.hits[path]
        if route is not None:
            if route.delay_s:
                time.sleep(route.delay_s)
            if route.redirect is not None:
                self._send(route.status or 302, headers={"Location": route.redirect})
                return
            if route.status is not None and (route.times is None or hits <= route.times):
                extra = {"Retry-After": str(route.retry_after)} if route.retry_after is not None else {}
                body = f"<html><body><h1>{route.status}</h1></body></html>".encode()
                self._send(route.status, body, {"Content-Type": "text/html; charset=utf-8", **extra})
                return
            if route.file is not None:
                path = route.file
        self._serve_file(server.folder, path)

    def _serve_file(self, folder: Path, path: str) -> None:
        target = (folder / path.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(folder) or target.name == SPEC_FILE or not target.is_file():
            self._send(404, b"<html><body><h1>Not found</h1></body></html>",
                       {"Content-Type": "text/html; charset=utf-8"})
            return
        body = target.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        mtime = int(target.stat().st_mtime)
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(mtime, usegmt=True)}
        if self._not_modified(etag, mtime):
            self._send(304, headers=headers)
            return
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        self._send(200, body, {"Content-Type": ctype, **headers})

    def _not_modified(self, etag: str, mtime: int) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:
            return etag in [m.strip() for m in match.split(",")] or match.strip() == "*"
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return mtime <= email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
        return False


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (a crawler refusing a body it does not want) is not a server error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(handler: Callable[..., BaseHTTPRequestHandler], **attrs: Any) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 with an ephemeral port in a background thread; yields ``http://127.0.0.1:PORT``.

    ``attrs`` are set on the server object (handlers read them as ``self.server.<name>``). The server
    stops and its port is released when the block ends.
    """
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    for name, value in attrs.items():
        setattr(httpd, name, value)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serve_site(folder: Path) -> Iterator[str]:
    """Serve a site folder (with its ``_site.json`` routes); yields the base URL without a trailing slash.

    Raises:
        InputError: ``folder`` is not a directory or its ``_site.json`` is malformed.
    """
    folder = Path(folder).resolve()
    spec = load_site_spec(folder)
    with serve(SiteHandler, folder=folder, spec=spec, hits=Counter(), lock=threading.Lock()) as base:
        yield base
