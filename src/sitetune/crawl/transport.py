"""The HTTP client's connections, opened only to addresses :class:`~sitetune.crawl.guard.FetchGuard` allows.

httpx resolves and connects inside its connection pool, out of reach of a URL check. Here the pool gets a
network backend that resolves the host itself, has the guard check every address, and connects to a
checked address, so what was checked is what is connected to.
"""

from __future__ import annotations

import asyncio
import socket
import typing

import httpcore
import httpx

from sitetune.crawl.guard import FetchGuard


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses :meth:`FetchGuard.check_addresses` approved."""

    def __init__(self, guard: FetchGuard) -> None:
        self.guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, check every address, and connect to the first checked address that answers."""
        if self.guard.exempt(host, port):
            # Named by the user (or private addresses allowed): connect as httpx would.
            return await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                 socket_options=socket_options)
        try:
            async with asyncio.timeout(timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
        except OSError as exc:  # reported like any host that cannot be reached
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.guard.check_addresses(host, port, addresses)
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        """Refused: a crawl only ever speaks TCP."""
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with every connection opened through :class:`GuardedBackend`.

    Args:
        guard: The policy to apply.
        limits: Connection limits (the client's own ``limits`` do not reach a transport passed to it).
    """

    def __init__(self, guard: FetchGuard, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx takes no network backend, so its pool is replaced by the same pool with ours; the
        # transport's request and response handling (and its exception mapping) stay httpx's own.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )
