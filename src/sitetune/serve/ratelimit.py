"""Per-client request rate limits: a bounded table of token buckets, and the ASGI middleware for the API.

:class:`RateLimiter` is the one limiter of the server: ``POST /feedback`` spends its tokens inside the
endpoint, and :class:`RateLimitMiddleware` spends them for ``GET /search`` and ``POST /answer`` before the
request reaches the router, so a refused request costs no routing, no body parsing, no validation and no
model work: a client that sends requests back to back gets cheap 429s and cannot saturate the core with
requests that would each be refused later anyway (a long query's 422 still costs FastAPI's validation).

The client is :func:`sitetune.serve.fairlock.client_key` of the ASGI scope, the key the fair model lock
takes turns by: the connection's address, or the one uvicorn took from ``X-Forwarded-For`` where the
connection comes from a trusted proxy (uvicorn's ``FORWARDED_ALLOW_IPS``: ``127.0.0.1`` unless set). The
header is never read here, so a client cannot pick its own bucket by sending one.

Each process keeps its own table: with ``serve --workers N`` a client may get up to N times the limit.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from sitetune.config import ServeConfig
from sitetune.errors import InputError
from sitetune.serve.fairlock import client_key
from sitetune.serve.middleware import ASGIApp, Receive, Scope, Send

#: The paths :class:`RateLimitMiddleware` limits: the ones that do model work for a request.
LIMITED_PATHS = frozenset({"/search", "/answer"})
#: Clients a table remembers at most (a bucket is two floats and a key: about 200 bytes each).
MAX_CLIENTS = 10_000
#: The ``detail`` of a 429 from :class:`RateLimitMiddleware`.
TOO_MANY = "too many requests from this address: try again after Retry-After seconds"


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, then ``rate`` requests per ``per`` seconds.

    Memory is bounded two ways. A bucket that has refilled completely is the same as no bucket (a client
    seen for the first time starts full), so idle clients are forgotten as later requests arrive: the table
    holds the clients seen within about ``burst / rate`` of ``per`` seconds. And past ``max_clients`` the
    client seen least recently is forgotten whatever its bucket holds, so a flood from many addresses
    cannot grow the table. Thread-safe (``/feedback`` runs in the threadpool; the middleware on the loop).

    Args:
        rate: Tokens added per ``per`` seconds (above 0).
        burst: Bucket size: requests allowed back to back (at least 1).
        per: The period ``rate`` is counted over, in seconds (60 for a rate per minute).
        max_clients: Clients remembered at most.
        clock: Seconds, monotonic (tests pass their own).

    Raises:
        ValueError: A rate, period or table size that is not positive, or a burst below 1.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        per: float = 1.0,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or per <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate and per must be above 0, burst and max_clients at least 1")
        self.rate = rate / per  # tokens per second
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        # client -> (tokens, when they were counted); least recently seen first
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Clients remembered now."""
        return len(self._buckets)

    def acquire(self, client: Hashable) -> int:
        """Take one token for ``client``.

        Returns:
            0 when the request may go ahead; else the whole seconds until the next token (for Retry-After).
        """
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = max(1, math.ceil((1 - tokens) / self.rate))
            self._buckets[client] = (tokens, now)
            self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        """Drop full buckets from the least recently seen end, then any past ``max_clients`` (lock held)."""
        buckets = self._buckets
        while len(buckets) > 1:
            oldest = next(iter(buckets))
            tokens, then = buckets[oldest]
            if tokens + (now - then) * self.rate < self.burst:
                break  # the oldest still counts; newer ones mostly do too, and each is dropped once anyway
            del buckets[oldest]
        while len(buckets) > self.max_clients:
            buckets.popitem(last=False)


def request_limiter(config: ServeConfig) -> RateLimiter | None:
    """The limiter of ``/search`` and ``/answer`` that ``config`` asks for; ``None`` when ``rate_limit`` is 0.

    Raises:
        InputError: ``rate_limit`` below 0 or ``rate_burst`` below 1.
    """
    if config.rate_limit < 0 or not math.isfinite(config.rate_limit):
        raise InputError(f"--rate-limit {config.rate_limit}: expected requests a second, 0 or above (0: off)")
    if config.rate_burst < 1:
        raise InputError(f"--rate-burst {config.rate_burst}: expected 1 or more")
    if config.rate_limit == 0:
        return None
    return RateLimiter(config.rate_limit, config.rate_burst)


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` to a client past its rate on :data:`LIMITED_PATHS`, before any app work.

    Every request to those paths spends a token, whatever its method or validity (a malformed flood is
    what this stops). Other paths (``/healthz``, ``/metrics``, the page) pass untouched and spend nothing.

    Args:
        app: The wrapped ASGI app.
        limiter: The buckets, keyed by :func:`~sitetune.serve.fairlock.client_key`.
        paths: The paths limited.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter, paths: frozenset[str] = LIMITED_PATHS) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = paths
        self._body = json.dumps({"detail": TOO_MANY, "errors": []}).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a limited request over its client's rate; pass on everything else."""
        if scope["type"] == "http" and scope.get("path") in self.paths:
            wait = self.limiter.acquire(client_key(scope))
            if wait:
                headers = [*self._headers, (b"retry-after", str(wait).encode())]
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": self._body})
                return
        await self.app(scope, receive, send)
