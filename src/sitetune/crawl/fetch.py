"""One HTTP GET done defensively: rate limit, retries with back-off, manual redirects, byte and time caps.

Bodies are streamed raw and decompressed here (gzip/deflate) with an output cap, so a gzip bomb stops at
``max_bytes`` of output rather than exhausting memory; the whole exchange runs under a deadline so a
server that drips one byte a second cannot hold a worker.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sitetune.config import CrawlConfig
from sitetune.crawl.encoding import decode_body
from sitetune.crawl.guard import FetchGuard, Refused
from sitetune.crawl.urls import normalize_url
from sitetune.errors import InputError

if TYPE_CHECKING:
    import httpx

HTML_TYPES = ("text/html", "application/xhtml+xml")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A URL that yields no page; ``reason`` is a short slug for the crawl report, ``detail`` says more."""

    def __init__(self, reason: str, detail: str = "", *, wire_bytes: int = 0) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.wire_bytes = wire_bytes  # received before giving up, so byte budgets count failures too


@dataclass
class Response:
    """A completed fetch.

    Attributes:
        url: The URL asked for.
        final_url: Where the redirects ended (normalised).
        status: The last HTTP status (200, or 304 when the cache's copy is still good).
        body: The decoded-from-transfer-encoding body (empty on 304).
        content_type: The Content-Type header.
        etag: The ETag header, if any.
        last_modified: The Last-Modified header, if any.
        wire_bytes: Bytes received on the wire, all hops and retries included.
        redirects: The URLs passed through before ``final_url``.
    """

    url: str
    final_url: str
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    wire_bytes: int = 0
    redirects: list[str] = field(default_factory=list)


class RateLimiter:
    """Spaces request starts at least ``delay_s`` apart (shared by all workers of one crawl).

    Args:
        delay_s: Seconds between request starts.
        deadline: ``time.monotonic()`` time after which no request may start (the crawl's time budget);
            None for no limit.
    """

    def __init__(self, delay_s: float, deadline: float | None = None) -> None:
        self.delay_s = delay_s
        self.deadline = deadline
        self._next = 0.0
        self._lock = asyncio.Lock()

    @property
    def next_start(self) -> float:
        """The ``time.monotonic()`` time at which the next request may start."""
        return self._next

    def check_wait(self, seconds: float, what: str = "the next request") -> None:
        """Raise ``crawl-deadline`` when a wait of ``seconds`` from now would end past the deadline.

        Waits count against the crawl's time budget: a robots.txt Crawl-delay or a Retry-After cannot keep
        a worker asleep after the crawl should have ended.
        """
        if self.deadline is not None and time.monotonic() + seconds > self.deadline:
            raise FetchError("crawl-deadline", f"{what} could start only in {seconds:g} s, after the crawl's "
                             "time budget ends")

    async def wait(self) -> None:
        """Sleep until the next request may start.

        Raises:
            FetchError: ``crawl-deadline`` when that would be after ``deadline`` (nothing is slept).
        """
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                self.check_wait(self._next - now)
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.delay_s


def retry_after_s(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FetchError("bad-encoding", f"unsupported Content-Encoding {encoding!r}")


async def _read_body(resp: httpx.Response, cfg: CrawlConfig) -> tuple[bytes, int]:
    """The body, decompressed, with both the wire bytes and the output capped at ``cfg.max_bytes``."""
    decoder = _decoder(resp.headers.get("content-encoding", ""))
    out = bytearray()
    wire = 0
    async for chunk in resp.aiter_raw():
        wire += len(chunk)
        if wire > cfg.max_bytes:
            raise FetchError("too-large", f"more than {cfg.max_bytes} bytes on the wire", wire_bytes=wire)
        if decoder is None:
            out += chunk
        else:
            try:
                # max_length bounds the output of this one call; the rest waits in unconsumed_tail.
                data = decoder.decompress(decoder.unconsumed_tail + chunk, cfg.max_bytes + 1 - len(out))
            except zlib.error as exc:
                raise FetchError("bad-encoding", f"corrupt compressed body: {exc}", wire_bytes=wire) from exc
            out += data
            if decoder.unconsumed_tail:
                raise FetchError("decompressed-too-large", f"body inflates past {cfg.max_bytes} bytes",
                                 wire_bytes=wire)
        if len(out) > cfg.max_bytes:
            raise FetchError("decompressed-too-large" if decoder else "too-large",
                             f"body larger than {cfg.max_bytes} bytes", wire_bytes=wire)
    return bytes(out), wire


def _is_html(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


async def _get_once(client: httpx.AsyncClient, url: str, headers: dict[str, str], cfg: CrawlConfig,
                    limiter: RateLimiter, *, html_only: bool) -> Response:
    """One URL with retries on 429/5xx and connection failures; redirects are returned, not followed.

    Each attempt runs under ``cfg.page_deadline_s``; waiting for the rate limiter and backing off do not
    count against it, so a long robots.txt Crawl-delay cannot make healthy pages miss their deadline. They
    count against the crawl's deadline instead (``limiter.deadline``): a wait that would end past it
    raises ``crawl-deadline`` at once.
    """
    import httpx

    for attempt in range(cfg.retries + 1):
        await limiter.wait()
        last = attempt == cfg.retries
        try:
            async with asyncio.timeout(cfg.page_deadline_s):
                resp, asked = await _attempt(client, url, headers, cfg, html_only=html_only, last=last)
            retry_wait = cfg.backoff_s * 2**attempt if asked is None else asked
        except TimeoutError as exc:
            raise FetchError("deadline", f"response took longer than {cfg.page_deadline_s:g} s") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if last:
                raise FetchError("unreachable", f"{type(exc).__name__}: {exc}") from exc
            retry_wait = cfg.backoff_s * 2**attempt
            resp = None
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", f"no data for {cfg.timeout_s:g} s ({type(exc).__name__})") from exc
        if resp is not None:
            return resp
        backoff = min(retry_wait, cfg.max_backoff_s)
        limiter.check_wait(backoff, "a retry")
        await asyncio.sleep(backoff)
    raise AssertionError("unreachable: the last attempt always returns or raises")


async def _attempt(client: httpx.AsyncClient, url: str, headers: dict[str, str], cfg: CrawlConfig, *,
                   html_only: bool, last: bool) -> tuple[Response | None, float | None]:
    """One request: the response, or None and the Retry-After (None when absent) of a 429/5xx answer."""
    async with client.stream("GET", url, headers=headers) as resp:
        status = resp.status_code
        if status in RETRY_STATUSES and not last:
            return None, retry_after_s(resp.headers.get("retry-after"))
        headers_in = resp.headers
        base = Response(url=url, final_url=url, status=status,
                        content_type=headers_in.get("content-type", ""), etag=headers_in.get("etag"),
                        last_modified=headers_in.get("last-modified"))
        if status in REDIRECT_STATUSES or status == 304 or status >= 400:
            base.body = headers_in.get("location", "").encode()
            return base, None
        if html_only and not _is_html(base.content_type):
            raise FetchError("non-html", base.content_type or "no Content-Type")
        length = headers_in.get("content-length", "")
        if length.isdigit() and int(length) > cfg.max_bytes:
            raise FetchError("too-large", f"Content-Length {length} > {cfg.max_bytes}")
        base.body, base.wire_bytes = await _read_body(resp, cfg)
        return base, None


async def fetch(client: httpx.AsyncClient, url: str, cfg: CrawlConfig, limiter: RateLimiter, *,
                guard: FetchGuard, validators: Callable[[str], dict[str, str]] | None = None,
                check_hop: Callable[[str], None] | None = None, html_only: bool = True) -> Response:
    """GET ``url``, following redirects by hand under the per-page deadline.

    Args:
        client: A shared ``httpx.AsyncClient`` made by :func:`make_client` with the same ``guard``.
        url: A normalised http(s) URL.
        cfg: Limits: retries, back-off, sizes, redirects, deadline.
        limiter: The crawl's rate limiter.
        guard: Checks ``url`` and every redirect target before it is requested (scheme, origin, address;
            see :mod:`sitetune.crawl.guard`).
        validators: Conditional-request headers for a URL (If-None-Match / If-Modified-Since).
        check_hop: Called with each redirect target before ``guard``; raises :class:`FetchError` to refuse
            it (outside the prefix, disallowed by robots.txt).
        html_only: Refuse non-HTML answers without reading their bodies.

    Returns:
        The final response: 200 with a body, 304, or another status the caller judges.

    Raises:
        FetchError: Redirect loop or chain too long, a hop the guard refuses (``off-site``,
            ``private-address``, ``bad-scheme``), deadline passed, body too large, non-HTML,
            unreachable host, or a status of 400 and above (reason ``http-<status>``).
    """
    chain = [url]
    wire = 0
    try:
        guard.check(url)
        current = url
        while True:
            headers = validators(current) if validators else {}
            resp = await _get_once(client, current, headers, cfg, limiter, html_only=html_only)
            wire += resp.wire_bytes
            if resp.status not in REDIRECT_STATUSES:
                break
            location = resp.body.decode("latin-1")
            target = normalize_url(location, current)
            if target is None:
                raise FetchError("bad-redirect", f"Location {location!r} is not an http(s) URL")
            if target in chain:
                raise FetchError("redirect-loop", " -> ".join([*chain, target]))
            if len(chain) > cfg.max_redirects:
                raise FetchError("too-many-redirects", f"more than {cfg.max_redirects} hops")
            if check_hop is not None:
                check_hop(target)
            guard.check(target, redirect=True)
            chain.append(target)
            current = target
    except Refused as exc:  # from the URL check or, when connecting, the address check
        raise FetchError(exc.reason, exc.detail, wire_bytes=wire) from exc
    except FetchError as exc:
        exc.wire_bytes += wire
        raise
    if resp.status >= 400:
        raise FetchError(f"http-{resp.status}", "")
    resp.url, resp.final_url, resp.redirects, resp.wire_bytes = url, chain[-1], chain[:-1], wire
    if resp.status == 304:
        resp.body = b""
    return resp


def make_client(cfg: CrawlConfig, guard: FetchGuard) -> httpx.AsyncClient:
    """An HTTP client with the crawl's timeouts and User-Agent; redirects and decoding are done by hand.

    Every connection it opens goes through ``guard`` (:class:`~sitetune.crawl.transport.GuardedTransport`):
    the host is resolved and each of its addresses checked before connecting to one of them.
    """
    import httpx

    from sitetune.crawl.transport import GuardedTransport

    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(cfg.timeout_s),
        headers={"User-Agent": cfg.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                 "Accept-Encoding": "gzip, deflate"},
        transport=GuardedTransport(guard, httpx.Limits(max_connections=max(cfg.concurrency, 1) + 1)),
        trust_env=False,
    )


@dataclass
class FetchedPage:
    """One page fetched on its own (for ``sitetune sectionize URL``)."""

    final_url: str
    html: str


def fetch_one(url: str, cfg: CrawlConfig | None = None) -> FetchedPage:
    """Fetch one HTML page synchronously.

    Redirects are followed on the URL's own origin (scheme, host and port) only, and only to public
    addresses unless the URL names a local or private address itself or ``cfg.allow_private_addresses``
    is set (see :mod:`sitetune.crawl.guard`).

    Raises:
        InputError: Malformed URL, or the fetch failed or was refused (the message gives the reason, e.g.
            ``http-404``, or ``off-site`` with the refused redirect target).
    """
    cfg = cfg or CrawlConfig(delay_s=0.0)
    normalized = normalize_url(url)
    if normalized is None:
        raise InputError("not a valid http(s) URL", path=url)
    guard = FetchGuard.for_start(normalized, allow_private=cfg.allow_private_addresses)

    async def run() -> Response:
        async with make_client(cfg, guard) as client:
            return await fetch(client, normalized, cfg, RateLimiter(0.0), guard=guard)

    try:
        resp = asyncio.run(run())
    except FetchError as exc:
        raise InputError(f"cannot fetch the page ({exc})", path=url) from exc
    return FetchedPage(final_url=resp.final_url, html=decode_body(resp.body, resp.content_type))
