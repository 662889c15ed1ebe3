"""The crawl loop: breadth-first over a URL prefix with a few concurrent workers, bounded everywhere.

Bounds: pages (``max_pages``), wall time (``total_time_s``, rate-limit and back-off waits included), bytes
(``max_total_bytes``), per-page time and size, URL shape (trap guard), robots.txt Crawl-delay (at most
:data:`~sitetune.crawl.robots.MAX_CRAWL_DELAY_S`), hosts and addresses (:mod:`sitetune.crawl.guard`). Every
URL met and not turned into records lands in the report with a reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from sitetune.config import ChunkingConfig, CrawlConfig
from sitetune.crawl.cache import CacheEntry, DeadEntry, PageCache
from sitetune.crawl.encoding import decode_body
from sitetune.crawl.fetch import FetchError, RateLimiter, Response, fetch, make_client
from sitetune.crawl.guard import FetchGuard
from sitetune.crawl.report import CrawlReport, PageResult, SkipLog, SkippedUrl
from sitetune.crawl.robots import Robots, load_robots
from sitetune.crawl.sectionmemo import SectionMemo, Sections
from sitetune.crawl.urls import TrapGuard, in_prefix
from sitetune.errors import InputError
from sitetune.records import SectionRecord
from sitetune.sectionize import extract_links, sectionize_html

if TYPE_CHECKING:
    import httpx


#: Answers that make a URL a dead link the page cache remembers (RFC 9111 section 4.2.2: cacheable by default).
_DEAD_REASONS = frozenset({"http-404", "http-410"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class _State:
    seen: set[str] = field(default_factory=set)
    finals: set[str] = field(default_factory=set)
    pages: dict[str, tuple[PageResult, list[SectionRecord], str]] = field(default_factory=dict)
    # Distinct page bodies: what ``max_pages`` counts. Pages with the same bytes (``/`` and ``/index.html``)
    # are one page; only the end of the crawl decides which URL keeps it (the same one on every run).
    contents: set[str] = field(default_factory=set)
    skipped: SkipLog = field(default_factory=SkipLog)
    robots: dict[str, Robots] = field(default_factory=dict)
    fetched: int = 0
    not_modified: int = 0
    # Pages taken from the cache without a request: the sitemap's <lastmod> is older than the cached copy.
    sitemap_unchanged: int = 0
    # Links skipped as dead without a request: the page cache saw them answer 404/410 within the TTL.
    dead_not_rechecked: int = 0
    wire_bytes: int = 0
    stopped: str | None = None


class Crawl:
    """One crawl run; build it and ``await run()``. Most callers want :func:`sitetune.crawl.crawl_site`.

    Args:
        start: Normalised start URL (the real, fetchable one).
        prefix: Normalised URL prefix; links outside it are skipped.
        config: Crawl limits.
        cache: Page cache (keys are public URLs).
        chunking: Passed to the sectionizer.
        public_base: When set, the start URL's origin is replaced by it in records, report and cache keys
            (a site served on an ephemeral local port keeps stable URLs).
        progress: Show a progress bar on stderr.
    """

    def __init__(self, start: str, prefix: str, config: CrawlConfig, cache: PageCache,
                 chunking: ChunkingConfig, *, public_base: str | None = None, progress: bool = True) -> None:
        self.start, self.prefix, self.cfg, self.cache, self.chunking = start, prefix, config, cache, chunking
        self.memo = SectionMemo(cache.root, chunking)
        self.real_origin = _origin(start)
        self.public_base = public_base.rstrip("/") if public_base else None
        self.progress = progress
        self.state = _State(skipped=SkipLog(config.max_skipped_listed))
        self.guard = TrapGuard(config)
        self.fetch_guard = FetchGuard.for_start(start, allow_private=config.allow_private_addresses)
        self.limiter = RateLimiter(config.delay_s)
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.robots_locks: dict[str, asyncio.Lock] = {}
        self.deadline = 0.0
        self.bar: Any = None
        #: Public page URL -> ``<lastmod>`` (Unix seconds) from the site's sitemaps (``config.sitemaps``).
        self.lastmod: dict[str, float | None] = {}
        #: Sitemap URL -> what came of it, for the report.
        self.sitemap_notes: dict[str, str] = {}

    def public(self, url: str) -> str:
        """``url`` with the served origin replaced by ``public_base`` (unchanged without one)."""
        if self.public_base and (url == self.real_origin or url.startswith(self.real_origin + "/")):
            return self.public_base + url[len(self.real_origin):]
        return url

    def real(self, url: str) -> str | None:
        """The fetchable form of a URL the site names (``public_base`` mapped back); None when off the site."""
        if self.public_base and (url == self.public_base or url.startswith(self.public_base + "/")):
            return self.real_origin + url[len(self.public_base):]
        if url == self.real_origin or url.startswith(self.real_origin + "/"):
            return url
        return None

    def skip(self, url: str, reason: str, detail: str = "") -> bool:
        """Record ``url`` as skipped for ``reason`` (under its public address); a URL counts once, first reason wins.

        Every skip is counted; the report lists at most ``max_skipped_listed`` of them (:class:`SkipLog`).
        Returns whether this skip counted (False: the URL was skipped before).
        """
        shown = self.public(url)
        return self.state.skipped.add(SkippedUrl(shown, reason, detail))

    def admit(self, url: str, depth: int) -> None:
        """Queue a discovered URL, or record why not."""
        if url in self.state.seen:
            return
        self.state.seen.add(url)
        if not in_prefix(url, self.prefix):
            self.skip(url, "outside-prefix", f"not under {self.public(self.prefix)}")
            return
        trap = self.guard.check(url, depth)
        if trap is not None:
            self.skip(url, *trap)
            return
        self.queue.put_nowait((url, depth))
        if self.bar is not None:
            self.bar.total += 1

    async def robots_for(self, client: httpx.AsyncClient, url: str) -> Robots:
        """The robots.txt rules of ``url``'s origin, fetched once per origin."""
        origin = _origin(url)
        lock = self.robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self.state.robots:
                robots = await load_robots(client, url, self.cfg, self.limiter, self.fetch_guard)
                self.state.robots[origin] = robots
                # Robots.crawl_delay is already clamped to MAX_CRAWL_DELAY_S (load_robots warns).
                self.limiter.delay_s = max(self.limiter.delay_s, robots.crawl_delay(self.cfg.user_agent))
            return self.state.robots[origin]

    def check_hop(self, target: str) -> None:
        """Refuse a redirect hop that leaves the prefix or is disallowed (raises FetchError)."""
        if not in_prefix(target, self.prefix):
            raise FetchError("outside-prefix", f"redirects to {self.public(target)}")
        robots = self.state.robots.get(_origin(target))
        if robots is not None and not robots.allows(target, self.cfg.user_agent):
            raise FetchError("robots", f"redirects to {self.public(target)}, disallowed by robots.txt")

    def _budget_exhausted(self) -> str | None:
        if time.monotonic() > self.deadline:
            return "crawl-deadline"
        if self.state.wire_bytes >= self.cfg.max_total_bytes:
            return "byte-budget"
        if len(self.state.contents) >= self.cfg.max_pages:
            return "max-pages"
        return None

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> tuple[Response, bytes, str]:
        """The page's response, body and Content-Type, revalidating against the cache.

        A page the sitemap lists with a ``<lastmod>`` no later than when the cached copy was last known
        current is taken from the cache without a request (as a 304 would be).
        """
        listed = self.lastmod.get(self.public(url))
        if listed is not None:
            hit = self.cache.get(self.public(url))
            if hit is not None and hit[0].fetched_at is not None and listed <= hit[0].fetched_at:
                self.state.sitemap_unchanged += 1
                return Response(url=url, final_url=url, status=304), hit[1], hit[0].content_type
        resp = await fetch(client, url, self.cfg, self.limiter, guard=self.fetch_guard, check_hop=self.check_hop,
                           validators=lambda u: self.cache.validators(self.public(u)))
        self.state.wire_bytes += resp.wire_bytes
        key = self.public(resp.final_url)
        if resp.status == 304:
            hit = self.cache.get(key)
            if hit is None:  # the entry vanished between the two reads: fetch it whole
                resp = await fetch(client, url, self.cfg, self.limiter, guard=self.fetch_guard,
                                   check_hop=self.check_hop)
                self.state.wire_bytes += resp.wire_bytes
            else:
                self.cache.touch(key, time.time())
                return resp, hit[1], hit[0].content_type
        if resp.status != 200:
            raise FetchError(f"http-{resp.status}", "only 200 answers are sectionized")
        self.state.fetched += 1
        self.cache.put(CacheEntry(key, resp.content_type, resp.etag, resp.last_modified, time.time()), resp.body)
        return resp, resp.body, resp.content_type

    async def process(self, client: httpx.AsyncClient, url: str, depth: int) -> None:
        """Fetch one URL, sectionize it, queue its links; every failure becomes a skip."""
        exhausted = self._budget_exhausted()
        if exhausted:
            self.state.stopped = self.state.stopped or exhausted
            self.skip(url, exhausted, "crawl budget reached before this URL was fetched")
            return
        try:
            robots = await self.robots_for(client, url)
        except FetchError as exc:  # load_robots lets only crawl-deadline through
            self._out_of_time(url, exc)
            return
        if not robots.allows(url, self.cfg.user_agent):
            self.skip(url, "robots", f"{self.public(robots.url)}: {robots.status} ({robots.detail})")
            return
        dead = self._known_dead(url)
        if dead is not None:
            age = time.time() - dead.at
            if self.skip(url, f"http-{dead.status}", f"answered {dead.status} {age / 3600:.1f} h ago (page cache); "
                         f"not re-checked for {self.cfg.dead_link_ttl_s:g} s (dead_link_ttl_s)"):
                self.state.dead_not_rechecked += 1
            return
        try:
            resp, body, content_type = await self._fetch(client, url)
        except FetchError as exc:
            self.state.wire_bytes += exc.wire_bytes
            if exc.reason == "crawl-deadline":
                self._out_of_time(url, exc)
            else:
                if exc.reason in _DEAD_REASONS:
                    self.cache.mark_dead(self.public(url), int(exc.reason.removeprefix("http-")), time.time())
                self.skip(url, exc.reason, exc.detail)
            return
        self.cache.forget_dead(self.public(url))  # it answers again: a later crawl must not skip it as dead
        final = resp.final_url
        self.state.seen.add(final)
        if final in self.state.finals:
            self.skip(url, "duplicate", f"redirects to {self.public(final)}, already crawled")
            return
        self.state.finals.add(final)
        digest = hashlib.sha1(body).hexdigest()
        if len(self.state.contents) >= self.cfg.max_pages and digest not in self.state.contents:
            self.state.stopped = self.state.stopped or "max-pages"
            self.skip(url, "max-pages", f"{self.cfg.max_pages} pages already crawled")
            return
        html = decode_body(body, content_type)
        sections = self._sections(html, self.public(final), digest, content_type)
        if isinstance(sections, str):
            self.skip(url, "no-text", sections)
        records = sections if isinstance(sections, list) else []
        if resp.status == 304:
            # Counted here, once the page is known to be new to this crawl: a redirect to a page crawled
            # moments ago is revalidated against the entry just cached, and is a duplicate, not a reuse.
            self.state.not_modified += 1
        if records:
            status = "not-modified" if resp.status == 304 else "fetched"
            self.state.pages[final] = (PageResult(self.public(url), self.public(final), status, len(records),
                                                  len(body), depth, [self.public(r) for r in resp.redirects]),
                                       records, digest)
            self.state.contents.add(digest)
        for href in extract_links(html):
            from sitetune.crawl.urls import normalize_url

            link = normalize_url(href, final)
            if link is None:
                self.skip(urljoin(final, href), "not-http", "not an http(s) link")
            else:
                self.admit(link, depth + 1)

    def _known_dead(self, url: str) -> DeadEntry | None:
        """The page cache's record of ``url`` answering 404/410 less than ``dead_link_ttl_s`` ago, else None.

        Only a URL found as a link counts: the start URL and the URLs the sitemaps list are always requested.
        """
        ttl = self.cfg.dead_link_ttl_s
        if ttl <= 0 or url == self.start or self.public(url) in self.lastmod:
            return None
        dead = self.cache.dead(self.public(url))
        # A record from the future (the clock went back) is not trusted: the link is checked again.
        if dead is None or not 0 <= time.time() - dead.at < ttl:
            return None
        return dead

    def _sections(self, html: str, page_url: str, digest: str, content_type: str) -> Sections:
        """The page's records (or why it has none): from the memo when this body was cut before, else cut now."""
        known = self.memo.get(page_url, digest, content_type)
        if known is not None:
            return known
        try:
            sections: Sections = sectionize_html(html, page_url, self.chunking)
        except InputError as exc:
            sections = str(exc)
        self.memo.put(page_url, digest, content_type, sections)
        return sections

    def _out_of_time(self, url: str, exc: FetchError) -> None:
        """Skip ``url``, whose next request would start after the crawl's deadline (``crawl-deadline``).

        When the rate limiter's next slot is past the deadline no request can start in time any more, so
        the crawl ends: the deadline moves to now and the other workers skip their URLs at once. A retry's
        back-off past the deadline skips only its own URL; other URLs may still fit.
        """
        self.skip(url, exc.reason, exc.detail)
        if self.limiter.next_start > self.deadline:
            self.state.stopped = self.state.stopped or exc.reason
            self.deadline = min(self.deadline, time.monotonic())

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while True:
            url, depth = await self.queue.get()
            try:
                await self.process(client, url, depth)
            except Exception as exc:  # one bad page must not end the crawl; the report says what happened
                self.skip(url, "error", f"{type(exc).__name__}: {exc}")
            finally:
                self.queue.task_done()
                if self.bar is not None:
                    self.bar.set_postfix(pages=len(self.state.pages), skipped=len(self.state.skipped),
                                         refresh=False)
                    self.bar.update(1)

    async def run(self) -> CrawlReport:
        """Crawl until the queue is empty or a budget runs out; returns the report (records in ``pages``)."""
        from tqdm import tqdm

        began = time.monotonic()
        self.deadline = began + self.cfg.total_time_s
        self.limiter.deadline = self.deadline
        self.bar = tqdm(total=0, unit="url", desc="crawl", file=sys.stderr, disable=not self.progress,
                        dynamic_ncols=True)
        try:
            async with make_client(self.cfg, self.fetch_guard) as client:
                self.admit(self.start, 0)
                if self.cfg.sitemaps:
                    await self._admit_sitemap_pages(client)
                n_workers = max(self.cfg.concurrency, 1)
                workers = [asyncio.create_task(self._worker(client)) for _ in range(n_workers)]
                try:
                    await self.queue.join()
                finally:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
            # Before the bar's last refresh, so its counts are the report's (a duplicate page moves to skipped).
            self._drop_duplicate_content()
            self.bar.set_postfix(pages=len(self.state.pages), skipped=len(self.state.skipped), refresh=True)
        finally:
            self.bar.close()
        s = self.state
        return CrawlReport(
            start_url=self.public(self.start), prefix=self.public(self.prefix),
            pages=[s.pages[k][0] for k in sorted(s.pages)],
            skipped=s.skipped.listed(), skipped_counts=s.skipped.reason_counts(),
            robots={self.public(r.url): f"{r.status}: {r.detail}" for r in s.robots.values()},
            fetched=s.fetched, not_modified=s.not_modified, wire_bytes=s.wire_bytes,
            duration_s=round(time.monotonic() - began, 3), stopped=s.stopped,
            sitemaps=dict(sorted(self.sitemap_notes.items())), sitemap_unchanged=s.sitemap_unchanged,
            dead_not_rechecked=s.dead_not_rechecked,
            transient=sorted(s.skipped.transient),
        )

    async def _admit_sitemap_pages(self, client: httpx.AsyncClient) -> None:
        """Queue the pages the site's sitemaps list under the prefix, and remember their ``<lastmod>``."""
        from sitetune.crawl.sitemap import scan_sitemaps

        try:
            robots = await self.robots_for(client, self.start)
        except FetchError:
            return  # no time left: the start page meets the same deadline
        if robots.status == "unreachable":
            return  # RFC 9309: nothing may be fetched, sitemaps included
        listed = list(robots.parser.sitemaps) if robots.parser is not None else []
        roots = listed or [self.public(self.real_origin + "/sitemap.xml")]
        scan = await scan_sitemaps(client, roots, self.cfg, self.limiter, self.fetch_guard, fetchable=self.real,
                                   shown=self.public)
        self.sitemap_notes.update(scan.notes)
        for page, lastmod in scan.pages.items():
            target = self.real(page)
            if target is None or not in_prefix(target, self.prefix):
                continue  # a site-wide sitemap lists much outside the prefix: not worth a skip entry each
            self.lastmod[self.public(target)] = lastmod
            self.admit(target, 1)

    def _drop_duplicate_content(self) -> None:
        """Keep one page per identical body (``/`` and ``/index.html``): the smallest URL, so runs agree."""
        keep: dict[str, str] = {}
        for final in sorted(self.state.pages):
            digest = self.state.pages[final][2]
            if digest in keep:
                result = self.state.pages.pop(final)[0]
                self.skip(final, "duplicate-content", f"same bytes as {self.public(keep[digest])}")
                if result.url != result.final_url:
                    self.skip(result.url, "duplicate-content", f"same bytes as {self.public(keep[digest])}")
            else:
                keep[digest] = final

    def records(self) -> list[SectionRecord]:
        """All records, pages in URL order (so cold and warm runs write identical corpora)."""
        return [r for k in sorted(self.state.pages) for r in self.state.pages[k][1]]
