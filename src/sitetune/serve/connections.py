"""Connection limits for uvicorn: a deadline for reading each request, keep-alive, connection cap, backlog.

uvicorn closes a keep-alive connection idle for ``ServeConfig.keep_alive_s`` after a response, and refuses
requests past ``max_connections`` open connections with a 503, but it has no timeout for reading a request:
a client that opens a socket and sends nothing, or sends its headers a byte at a time (slowloris), holds the
connection forever, and enough of them push every real client past ``max_connections``.
:class:`GuardedH11Protocol` adds that timeout: a connection that has not delivered a whole request within
``header_timeout_s`` of opening (or of its last response) is closed. :func:`server_options` is what the
single-process server (:mod:`sitetune.serve.runner`) and ``--workers N`` (:mod:`sitetune.serve.workers`)
both pass to uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sitetune.config import ServeConfig

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each request (headers and body).

    The deadline starts when the connection opens and again after each response; it is not moved by
    bytes arriving, so dribbling a header a byte at a time does not extend it. When it passes while the
    connection is still waiting for a request, or still reading one whose response has not started, the
    connection is closed. A request the app is working on is never cut off.

    Args:
        config: uvicorn's config (as for :class:`H11Protocol`).
        server_state: uvicorn's shared server state.
        app_state: The lifespan state.
        _loop: The event loop.
        header_timeout_s: Seconds allowed for each request to arrive.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout_s: float = ServeConfig.header_timeout_s,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s = header_timeout_s
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection and start its first request's deadline."""
        super().connection_made(transport)
        self._start_deadline()

    def on_response_complete(self) -> None:
        """Start the next request's deadline, then let uvicorn go on (keep-alive, pipelined requests)."""
        self._start_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._cancel_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._cancel_deadline()
        self._read_deadline = self.loop.call_later(self.header_timeout_s, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _deadline_passed(self) -> None:
        self._read_deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        reading = state is h11.SEND_BODY and (self.cycle is None or not self.cycle.response_started)
        if state is h11.IDLE or reading:
            self.transport.close()


#: uvicorn's own backlog, kept for one process when ``ServeConfig.backlog`` is not set.
UVICORN_BACKLOG = 2048


def server_options(config: ServeConfig, *, default_backlog: int = UVICORN_BACKLOG) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that bound connections: request-read deadline, keep-alive, limits.

    Shared by the single-process server and ``--workers N`` (the protocol is a ``functools.partial`` of a
    module-level class, so it pickles into spawned workers).

    Args:
        config: The server's settings.
        default_backlog: The backlog when ``config.backlog`` is ``None``.

    Returns:
        ``http``, ``timeout_keep_alive``, ``limit_concurrency`` and ``backlog``.
    """
    protocol = functools.partial(GuardedH11Protocol, header_timeout_s=config.header_timeout_s)
    return {
        # uvicorn calls it like a protocol class; a partial carries the timeout there (and pickles).
        "http": cast("type[asyncio.Protocol]", protocol),
        "timeout_keep_alive": config.keep_alive_s,
        "limit_concurrency": config.max_connections,
        "backlog": default_backlog if config.backlog is None else config.backlog,
    }
