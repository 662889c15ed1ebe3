"""Sitemaps (sitemaps.org): the URLs a site lists, with ``<lastmod>``, found through robots.txt or ``/sitemap.xml``.

A sitemap is the site's file, so it is read defensively: the body is capped (the fetch's ``max_bytes``,
gzip output included), a file with a DOCTYPE or an entity declaration is refused before any of it is
expanded, at most :data:`MAX_URLS_PER_SITEMAP` entries are read from one file and at most
:data:`MAX_SITEMAPS` files are fetched per crawl (a sitemap index may list others; indexes nest
:data:`MAX_INDEX_DEPTH` deep at most). A sitemap that cannot be fetched or parsed is a warning naming its
URL in the crawl report, never the end of the crawl: the pages are still found by following links.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.parsers import expat

from sitetune.config import CrawlConfig
from sitetune.crawl.fetch import FetchError, RateLimiter, fetch
from sitetune.crawl.urls import normalize_url

if TYPE_CHECKING:
    import httpx

    from sitetune.crawl.guard import FetchGuard

_LOG = logging.getLogger(__name__)

#: The protocol's limit per file (sitemaps.org); entries past it are ignored with a note.
MAX_URLS_PER_SITEMAP = 50_000
#: Sitemap files fetched per crawl, indexes included.
MAX_SITEMAPS = 50
#: A sitemap index may list sitemap indexes only this deep (the protocol allows none; some sites nest one).
MAX_INDEX_DEPTH = 2
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SitemapError(Exception):
    """A sitemap that is not a usable sitemap (malformed XML, a DOCTYPE, an unknown root element)."""


@dataclass(frozen=True)
class SitemapEntry:
    """One ``<url>`` (or, in an index, one ``<sitemap>``).

    Attributes:
        loc: The URL as written (absolute, per the protocol).
        lastmod: ``<lastmod>`` as Unix seconds: the latest moment it can mean (a date alone is read as the
            end of that day, UTC), so a page is never taken as older than it is. ``None``: absent or not a
            W3C date.
    """

    loc: str
    lastmod: float | None = None


@dataclass
class Sitemap:
    """A parsed file.

    Attributes:
        index: True for a ``<sitemapindex>`` (entries are sitemaps), False for a ``<urlset>`` (pages).
        entries: What it lists, in file order (at most ``max_urls``).
        truncated: Entries past ``max_urls`` that were ignored.
    """

    index: bool
    entries: list[SitemapEntry] = field(default_factory=list)
    truncated: int = 0


def parse_lastmod(text: str) -> float | None:
    """A W3C datetime (``2024-05-01``, ``2024-05-01T10:00:00+02:00``, ``...Z``) as Unix seconds, or None.

    A date alone means "some time that day": the end of the day (UTC) is returned, so a page changed
    later that day than it was fetched is still fetched again.
    """
    value = text.strip()
    if not value:
        return None
    try:
        if _DATE.match(value):
            day = datetime.date.fromisoformat(value)
            return float(calendar.timegm(day.timetuple()) + 86_400)
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise SitemapError(f"corrupt gzip data: {exc}") from exc
    if len(out) > max_bytes or decoder.unconsumed_tail:
        raise SitemapError(f"inflates past {max_bytes} bytes")
    return out


def parse_sitemap(data: bytes, *, max_urls: int = MAX_URLS_PER_SITEMAP, max_bytes: int = 50_000_000) -> Sitemap:
    """Parse a sitemap or sitemap index (gzip-compressed or not).

    Elements are matched by local name, whatever their namespace; text outside ``<loc>`` and
    ``<lastmod>`` is ignored.

    Args:
        data: The file's bytes.
        max_urls: Entries kept; the rest are counted in ``truncated``.
        max_bytes: Largest size a gzip-compressed file may inflate to.

    Raises:
        SitemapError: Malformed XML, a DOCTYPE or entity declaration (refused: never expanded), or a root
            element other than ``urlset`` / ``sitemapindex``.
    """
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_bytes)
    parser = expat.ParserCreate(namespace_separator=" ")
    result = Sitemap(index=False)
    stack: list[str] = []
    text: list[str] = []
    current: dict[str, str] = {}

    def refuse(*_args: object) -> None:
        raise SitemapError("has a DOCTYPE or entity declaration (refused: a sitemap needs neither)")

    def start(name: str, _attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if not stack:
            if local not in ("urlset", "sitemapindex"):
                raise SitemapError(f"root element is <{local}>, not <urlset> or <sitemapindex>")
            result.index = local == "sitemapindex"
        elif len(stack) == 1 and local in ("url", "sitemap"):
            current.clear()
        stack.append(local)
        text.clear()

    def end(name: str) -> None:
        local = stack.pop()
        if len(stack) == 2 and local in ("loc", "lastmod"):
            current[local] = "".join(text).strip()
        elif len(stack) == 1 and local in ("url", "sitemap") and current.get("loc"):
            if len(result.entries) < max_urls:
                lastmod = parse_lastmod(current.get("lastmod", ""))
                result.entries.append(SitemapEntry(current["loc"], lastmod))
            else:
                result.truncated += 1
        text.clear()

    def chars(data_: str) -> None:
        if len(stack) == 3:
            text.append(data_)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise SitemapError(f"not well-formed XML: {exc}") from exc
    return result


@dataclass
class SitemapScan:
    """What the sitemaps of a crawl listed.

    Attributes:
        pages: Page URL (normalised, as listed) -> its ``<lastmod>`` (Unix seconds, or None).
        notes: Sitemap URL -> what came of it ("12 URLs", "http-404", "not well-formed XML: ..."), for the
            crawl report.
    """

    pages: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


async def scan_sitemaps(client: httpx.AsyncClient, roots: list[str], cfg: CrawlConfig, limiter: RateLimiter,
                        guard: FetchGuard, *, fetchable: Callable[[str], str | None] = lambda u: u,
                        shown: Callable[[str], str] = lambda u: u) -> SitemapScan:
    """Fetch the sitemaps ``roots`` name, the sitemaps their indexes list, and gather the page URLs.

    Args:
        client: The crawl's client (:func:`sitetune.crawl.fetch.make_client` with ``guard``).
        roots: Sitemap URLs to start from (robots.txt ``Sitemap:`` lines, else ``/sitemap.xml``), as the
            site names them.
        cfg: The crawl's limits (``max_bytes`` caps each file).
        limiter: The crawl's rate limiter (sitemaps count as requests).
        guard: Refuses other hosts and private addresses, as for pages.
        fetchable: Maps a URL as listed to the URL to request (a site served locally under a public base);
            ``None``: not on the crawled site, not fetched.
        shown: Maps a requested URL back to how the report names it.

    Returns:
        The pages listed and a note per sitemap. A sitemap that fails is a note and a warning, never an
        exception (``crawl-deadline`` stops the scan quietly: the pages it had found are kept).
    """
    scan = SitemapScan()
    queue: list[tuple[str, int]] = [(u, 0) for u in dict.fromkeys(roots)]
    done: set[str] = set()
    while queue:
        url, depth = queue.pop(0)
        if url in done:
            continue
        done.add(url)
        if len(done) > MAX_SITEMAPS:
            scan.notes[url] = f"not read: more than {MAX_SITEMAPS} sitemaps"
            continue
        target = fetchable(url)
        if target is None:
            scan.notes[url] = "not read: not on the crawled site"
            continue
        try:
            resp = await fetch(client, target, cfg, limiter, guard=guard, html_only=False)
            if resp.status != 200:
                raise FetchError(f"http-{resp.status}")
            sitemap = parse_sitemap(resp.body, max_bytes=cfg.max_bytes)
        except FetchError as exc:
            if exc.reason == "crawl-deadline":
                scan.notes[url] = str(exc)
                return scan
            scan.notes[url] = str(exc)
            if exc.reason not in ("http-404", "http-410"):  # no sitemap at the default place is normal
                _LOG.warning("sitemap %s not read: %s", shown(target), exc)
            continue
        except SitemapError as exc:
            scan.notes[url] = str(exc)
            _LOG.warning("sitemap %s ignored: %s", shown(target), exc)
            continue
        extra = f" ({sitemap.truncated} more ignored)" if sitemap.truncated else ""
        if sitemap.index:
            scan.notes[url] = f"index of {len(sitemap.entries)} sitemaps{extra}"
            if depth + 1 > MAX_INDEX_DEPTH:
                scan.notes[url] += f"; not followed: indexes nest more than {MAX_INDEX_DEPTH} deep"
                continue
            for entry in sitemap.entries:
                child = normalize_url(entry.loc, url)
                if child is not None:
                    queue.append((child, depth + 1))
            continue
        scan.notes[url] = f"{len(sitemap.entries)} URLs{extra}"
        for entry in sitemap.entries:
            page = normalize_url(entry.loc, url)
            if page is not None and page not in scan.pages:
                scan.pages[page] = entry.lastmod
    return scan
