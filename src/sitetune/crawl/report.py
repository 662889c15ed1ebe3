"""The crawl report: every page fetched, every URL skipped counted by reason (a bounded list of them), as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sitetune.atomic import atomic_write_text
from sitetune.config import MAX_SKIPPED_LISTED


@dataclass
class PageResult:
    """One page that was fetched (or revalidated) and sectionized.

    Attributes:
        url: The URL as linked (after normalisation and rebasing).
        final_url: Where redirects ended; the records carry this URL.
        status: "fetched" (200) or "not-modified" (304: the cached copy was used).
        records: Section records the page produced.
        bytes: Body size in bytes.
        depth: Links from the start page.
        redirects: URLs passed through on the way, if any.
    """

    url: str
    final_url: str
    status: str
    records: int
    bytes: int
    depth: int
    redirects: list[str] = field(default_factory=list)


@dataclass
class SkippedUrl:
    """A URL the crawl did not turn into records.

    Attributes:
        url: The URL (normalised and rebased).
        reason: A short slug: robots, outside-prefix, non-html, http-404, redirect-loop, too-large,
            decompressed-too-large, deadline, timeout, unreachable, pattern-trap, query-trap, too-deep,
            url-too-long, no-text, duplicate, max-pages, crawl-deadline, byte-budget, not-http,
            private-address, off-site, ...
        detail: Specifics (the status, the size, the redirect chain, the robots.txt answer).
    """

    url: str
    reason: str
    detail: str = ""


#: Skip reasons that say nothing about the page itself: the server or the crawl's budget failed this time.
TRANSIENT_REASONS = frozenset({"deadline", "timeout", "unreachable", "crawl-deadline", "byte-budget", "max-pages",
                               "error", "http-429"})


def is_transient(reason: str) -> bool:
    """Whether a skip ``reason`` may pass by itself (a 5xx, a timeout, a budget), unlike a 404 or robots.txt."""
    return reason in TRANSIENT_REASONS or (reason.startswith("http-5") and len(reason) == 8)


class SkipLog:
    """The URLs a crawl skipped: every one counted by reason, at most ``limit`` of them kept for the report.

    A URL counts once, under the first reason given for it. A site with millions of URLs (a calendar, faceted
    search) would otherwise keep millions of entries in memory and write them all to the report. Per reason,
    only the ``limit`` smallest URLs are kept, so the list does not depend on the order the concurrent workers
    met them, and :meth:`listed` gives every reason its turn, so a rare reason (one ``robots`` URL) still
    appears beside a million ``pattern-trap`` ones.

    Args:
        limit: Most entries :meth:`listed` returns (at least 0).
    """

    def __init__(self, limit: int = MAX_SKIPPED_LISTED) -> None:
        self.limit = max(limit, 0)
        self.counts: Counter[str] = Counter()
        #: Every URL skipped for a reason that may pass (:func:`is_transient`), listed or not.
        self.transient: set[str] = set()
        # Every URL skipped so far, for the once-per-URL rule (the crawler's ``seen`` set holds as many).
        self._urls: set[str] = set()
        self._kept: dict[str, dict[str, SkippedUrl]] = {}

    def add(self, entry: SkippedUrl) -> bool:
        """Count ``entry`` and maybe keep it; False (and nothing changes) when its URL was skipped before."""
        if entry.url in self._urls:
            return False
        self._urls.add(entry.url)
        self.counts[entry.reason] += 1
        if is_transient(entry.reason):
            self.transient.add(entry.url)
        kept = self._kept.setdefault(entry.reason, {})
        kept[entry.url] = entry
        if len(kept) > 2 * self.limit:  # trim now and then, not on every add: amortised O(log n) per URL
            self._kept[entry.reason] = {url: kept[url] for url in sorted(kept)[:self.limit]}
        return True

    def __len__(self) -> int:
        return len(self._urls)

    def __contains__(self, url: object) -> bool:
        return url in self._urls

    def listed(self) -> list[SkippedUrl]:
        """At most ``limit`` entries in URL order: every one when they fit, else each reason's smallest URLs.

        Reasons take turns (alphabetically), one URL each per round, until ``limit`` entries are chosen.
        """
        queues = [sorted(kept.values(), key=lambda s: s.url) for _, kept in sorted(self._kept.items())]
        chosen: list[SkippedUrl] = []
        for rank in range(max((len(q) for q in queues), default=0)):
            for queue in queues:
                if len(chosen) >= self.limit:
                    return sorted(chosen, key=lambda s: s.url)
                if rank < len(queue):
                    chosen.append(queue[rank])
        return sorted(chosen, key=lambda s: s.url)

    def reason_counts(self) -> dict[str, int]:
        """How many URLs were skipped for each reason, all of them (listed or not), reasons sorted."""
        return dict(sorted(self.counts.items()))


@dataclass
class CrawlReport:
    """What a crawl did; ``write`` saves it as JSON beside the corpus.

    Attributes:
        start_url: Where the crawl began (rebased when the site was served locally).
        prefix: URLs outside it were not followed.
        corpus: The corpus file written (None when nothing was written).
        pages: Pages that produced records, sorted by URL.
        skipped: URLs skipped, with their reasons, sorted by URL: all of them, or at most
            ``CrawlConfig.max_skipped_listed`` (see :class:`SkipLog`) when ``skipped_truncated``.
        robots: robots.txt outcome per origin: "parsed", "absent" or "unreachable" with detail.
        fetched: Pages downloaded in full.
        not_modified: Pages revalidated with a 304 and taken from the cache.
        records: Records written.
        wire_bytes: Bytes received, all requests included.
        duration_s: Wall-clock seconds.
        stopped: Why the crawl stopped early ("max-pages", "crawl-deadline", "byte-budget"), or None.
        skipped_counts: Exact number of URLs skipped per reason, listed or not (empty: ``skipped`` is the
            whole list and is counted). The JSON calls it ``skip_reasons`` (see :meth:`to_dict`).
        sitemaps: Sitemap URL -> what came of it ("12 URLs", "http-404", why it was ignored); empty when
            sitemaps were not read (``CrawlConfig.sitemaps``).
        sitemap_unchanged: Of ``not_modified``, the pages taken from the cache without any request, their
            sitemap ``<lastmod>`` being older than the cached copy.
        transient: Every URL skipped for a reason that may pass by itself (5xx, timeout, crawl budget;
            :func:`is_transient`), listed in ``skipped`` or not. ``sitetune refresh`` keeps such pages'
            previous sections.
        dead_not_rechecked: Of the URLs skipped as ``http-404``/``http-410``, those not requested this time:
            links the page cache saw answer so less than ``CrawlConfig.dead_link_ttl_s`` ago.
    """

    start_url: str
    prefix: str
    corpus: str | None = None
    pages: list[PageResult] = field(default_factory=list)
    skipped: list[SkippedUrl] = field(default_factory=list)
    robots: dict[str, str] = field(default_factory=dict)
    fetched: int = 0
    not_modified: int = 0
    records: int = 0
    wire_bytes: int = 0
    duration_s: float = 0.0
    stopped: str | None = None
    skipped_counts: dict[str, int] = field(default_factory=dict)
    sitemaps: dict[str, str] = field(default_factory=dict)
    sitemap_unchanged: int = 0
    transient: list[str] = field(default_factory=list)
    dead_not_rechecked: int = 0

    def skip_reasons(self) -> dict[str, int]:
        """How many URLs were skipped for each reason, all of them (not only those listed), reasons sorted."""
        if self.skipped_counts:
            return dict(sorted(self.skipped_counts.items()))
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    @property
    def skipped_total(self) -> int:
        """How many URLs were skipped, listed or not."""
        return sum(self.skip_reasons().values())

    @property
    def skipped_truncated(self) -> bool:
        """Whether ``skipped`` lists only some of the skipped URLs."""
        return self.skipped_total > len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with a summary of the skips added.

        ``skip_reasons`` counts every skipped URL by reason, ``skipped_total`` sums them, and
        ``skipped_truncated`` says whether ``skipped`` lists only some of them.
        """
        data = asdict(self)
        del data["skipped_counts"]  # written as skip_reasons, the report's key since the first version
        data["skip_reasons"] = self.skip_reasons()
        data["skipped_total"] = self.skipped_total
        data["skipped_truncated"] = self.skipped_truncated
        return data

    def write(self, path: str | Path) -> Path:
        """Save as indented JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return path
