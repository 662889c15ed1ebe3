"""The outermost middleware: a request id on every response, request metrics and the line per request.

:class:`ObserveMiddleware` wraps the whole app (security headers, host check and body limit included), so
what it sees is what the client gets: a 400 for a foreign Host header, a 413, the 500 that
:class:`~sitetune.serve.middleware.SecurityHeadersMiddleware` sends for an unhandled error. It is plain ASGI,
like the rest of :mod:`sitetune.serve.middleware`.
"""

from __future__ import annotations

import logging
import time

from starlette.routing import Mount

from sitetune.serve.logformat import REQUEST_LOGGER, request_id_from, set_request_id
from sitetune.serve.metrics import UNMATCHED, ServeMetrics
from sitetune.serve.middleware import ASGIApp, Message, Receive, Scope, Send

_REQUESTS = logging.getLogger(REQUEST_LOGGER)
#: Paths polled by monitoring: their successful requests are logged at DEBUG, so probes every few seconds
#: do not bury the requests people made.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})
#: Logged path length: the rest is cut (h11 allows request lines of many kilobytes).
MAX_LOGGED_PATH = 200
#: The status recorded when the app returns without starting a response (the client went away first).
CLIENT_GONE = 499


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/search``, ``/static/{path}``), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return f"{path}/{{path}}" if isinstance(route, Mount) else path
    if "app_root_path" in scope:
        # A Mount matched without naming itself in scope["route"] (FastAPI's router does not): Starlette moved
        # the mount's path from the path to root_path, past app_root_path (the root_path before the mount).
        mounted = str(scope.get("root_path", ""))[len(str(scope["app_root_path"])) :]
        return f"{mounted}/{{path}}"
    return UNMATCHED


def _printable(path: str) -> str:
    shown = path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."
    # A percent-decoded path may hold control characters: escaped, so a text log line stays one line.
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in shown)


class ObserveMiddleware:
    """Gives each HTTP request an id (``X-Request-ID``, in and out), counts it and logs one line for it.

    The line (logger ``sitetune.serve.requests``) holds the method, the path without its query string, the
    status and the duration; never the client's address. It is INFO, DEBUG for successful probes of
    :data:`QUIET_PATHS`, ERROR for a 5xx. Without a logging configuration (``--log-format text``) Python shows
    only the ERROR ones.

    Args:
        app: The wrapped ASGI app.
        metrics: Where requests are counted; ``None`` counts nothing.
    """

    def __init__(self, app: ASGIApp, metrics: ServeMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its id; count and log it once it is answered (or has failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = next((value for name, value in scope.get("headers", []) if name == b"x-request-id"), None)
        request_id = request_id_from(incoming)
        set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id for endpoints
        header = (b"x-request-id", request_id.encode("ascii"))
        status = CLIENT_GONE

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == CLIENT_GONE:  # nothing was sent; the server answers 500
                status = 500
            raise
        finally:
            self._finish(scope, request_id, status, time.perf_counter() - start)

    def _finish(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        path = str(scope.get("path", ""))
        if self.metrics is not None:
            self.metrics.observe_request(method, route_template(scope), status, seconds)
        if status >= 500:
            level = logging.ERROR
        elif path in QUIET_PATHS and status < 400:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if _REQUESTS.isEnabledFor(level):
            duration_ms = round(seconds * 1000, 1)
            shown = _printable(path)
            _REQUESTS.log(
                level,
                "%s %s %d in %.1f ms",
                method,
                shown,
                status,
                duration_ms,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": shown,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
