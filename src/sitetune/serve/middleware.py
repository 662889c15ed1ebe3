"""Pure-ASGI middleware: a streamed request-body limit, security headers, the worker header, CORS and Host checks.

The per-client rate limiter is in :mod:`sitetune.serve.ratelimit`.

The middleware is plain ASGI (not ``BaseHTTPMiddleware``) so it sees the raw ``receive`` stream, which is
where a chunked upload without Content-Length has to be counted, and so it adds nothing to the hot path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from sitetune.errors import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Content-Security-Policy of the page and the API: scripts and styles only from our own static files.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's /docs and /redoc load Swagger UI / ReDoc from a CDN and start it with an inline script.
#: Those pages show no corpus text, so only they get the looser policy.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit.

    It is an ``HTTPException`` because FastAPI turns any other exception raised while reading the body into
    a 400 "error parsing the body"; this way the app's 413 handler answers.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body too large: the limit is {limit} bytes")


def _error_body(status: int, detail: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"detail": detail, "errors": []}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return body, headers


class BodyLimitMiddleware:
    """Answers 413 for request bodies over ``max_bytes``.

    A declared Content-Length over the limit is refused before anything is read. Otherwise the bytes
    are counted as they stream in (chunked transfer included) and reading stops at the first byte over
    the limit, so a client cannot make the server buffer more than ``max_bytes`` by leaving the length out.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        body, headers = _error_body(status, detail)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an HTTP request whose body is over the limit (by its header or as it streams); pass on the rest."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await self._refuse(
                        send, 413, f"request body too large: the limit is {self.max_bytes} bytes"
                    )
                    return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Reached only where the app let the exception escape (a route without an error handler).
            if started:
                raise
            await self._refuse(send, 413, str(exc.detail))


class SecurityHeadersMiddleware:
    """Adds security headers to every HTTP response (errors and static files included).

    An exception that escapes the app before its response started is answered here with a 500 in the API's
    error shape (``{"detail": "internal server error", "errors": []}``) carrying the headers, then raised
    again so the server logs it; Starlette's own 500 comes from outside every middleware and would carry
    none of them.

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add the security headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") in DOCS_PATHS else PAGE_CSP
        extra = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in present
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                body, headers = _error_body(500, "internal server error")
                await send_with_headers({"type": "http.response.start", "status": 500, "headers": headers})
                await send_with_headers({"type": "http.response.body", "body": body})
            raise


class WorkerHeaderMiddleware:
    """Adds ``X-Sitetune-Worker: <pid>`` to every HTTP response, so a client can tell the workers apart.

    Only ``sitetune serve --workers N`` (N > 1) adds it; a single process sends no such header.

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-sitetune-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and name this process in its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_worker)


def check_allowed_hosts(hosts: Sequence[str]) -> None:
    """Refuse Host patterns Starlette's ``TrustedHostMiddleware`` cannot use (it would fail on the first request).

    Raises:
        InputError: A pattern is empty or has a ``*`` anywhere but as ``*`` alone or a leading ``*.``.
    """
    for host in hosts:
        wildcard_ok = host == "*" or (host.startswith("*.") and "*" not in host[2:])
        if not host or ("*" in host and not wildcard_ok):
            raise InputError(
                f"--allowed-host {host!r}: expected a host name or address, '*.example.org' or '*'"
            )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """The origins ``--allow-origin`` names, written as browsers send them in the ``Origin`` header.

    Scheme and host are lowercased, a trailing ``/`` and the scheme's default port dropped, so
    ``https://WWW.Example.org/`` matches what a browser on ``https://www.example.org`` sends. ``*`` (any
    origin) is kept as it is; it is never a default.

    Raises:
        InputError: An origin that is not ``http(s)://host[:port]`` (a path, query, user name, another
            scheme, or ``null``, which sandboxed frames and local files send).
    """
    normalised: list[str] = []
    for given in origins:
        origin = given.strip()
        if origin == "*":
            normalised.append(origin)
            continue
        problem = f"--allow-origin {given!r}: expected scheme://host[:port], e.g. https://www.example.org"
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            raise InputError(problem) from None
        if (
            parts.scheme.lower() not in _DEFAULT_PORTS
            or not parts.hostname
            or parts.username is not None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "#" in origin
            or "?" in origin
        ):
            raise InputError(problem)
        scheme = parts.scheme.lower()
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
        normalised.append(f"{scheme}://{host}{shown_port}")
    return tuple(dict.fromkeys(normalised))


class ListedOriginsMiddleware(CORSMiddleware):
    """Starlette's ``CORSMiddleware`` for the listed origins only: GET and POST, ``Content-Type``, no credentials.

    A listed origin gets ``Access-Control-Allow-Origin: <origin>`` and ``Vary: Origin`` on preflights and
    responses. Any other origin gets no CORS header at all: its responses carry only ``Vary: Origin``, and
    its preflight a 400 in the API's error shape (Starlette's own refusal still lists the allowed methods
    and headers).

    Args:
        app: The wrapped ASGI app.
        origins: Allowed origins, as :func:`check_origins` returns them.
    """

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=tuple(origins),
            allow_methods=("GET", "POST"),
            allow_headers=("Content-Type",),
            allow_credentials=False,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer for a listed origin; a bare 400 for any other."""
        if not self.is_allowed_origin(request_headers["origin"]):
            body, _ = _error_body(400, "this origin may not call the API from a browser (--allow-origin)")
            return Response(body, status_code=400, headers={"Vary": "Origin", "Content-Type": "application/json"})
        return super().preflight_response(request_headers)
