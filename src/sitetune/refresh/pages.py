"""How a re-crawl's pages compare with the previous corpus, and which previous pages it keeps.

A page the crawl could not fetch this time for a reason that may pass (a 5xx, a timeout, the crawl's budget;
:func:`sitetune.crawl.report.is_transient`) keeps its previous sections: one bad night of the site's server
must not drop pages from search. A page that answers 404, is disallowed, or is no longer linked is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sitetune.records import SectionRecord


@dataclass(frozen=True)
class PageChanges:
    """Pages of the new corpus against the previous one (by URL).

    Attributes:
        new: Pages not in the previous corpus.
        changed: Pages in both whose sections differ.
        unchanged: Pages in both with the same sections.
        gone: Previous pages not in the new corpus.
        kept: Previous pages the crawl failed to fetch this time, kept as they were.
    """

    new: int
    changed: int
    unchanged: int
    gone: int
    kept: int


def by_page(records: Iterable[SectionRecord]) -> dict[str, list[SectionRecord]]:
    """Records grouped by URL, pages in first-seen order, sections in order."""
    pages: dict[str, list[SectionRecord]] = {}
    for r in records:
        pages.setdefault(r.url, []).append(r)
    return pages


def merge_pages(previous: Sequence[SectionRecord], crawled: Sequence[SectionRecord],
                failed: Iterable[str]) -> tuple[list[SectionRecord], PageChanges]:
    """The refreshed corpus (pages in URL order) and how it differs from ``previous``.

    Args:
        previous: The corpus before the refresh (empty on the first run).
        crawled: What the crawl produced.
        failed: URLs the crawl skipped for a reason that may pass (``CrawlReport.transient``).
    """
    old, new = by_page(previous), by_page(crawled)
    failed_urls = set(failed)
    kept = {url: rows for url, rows in old.items() if url not in new and url in failed_urls}
    merged = {**new, **kept}
    both = [url for url in new if url in old]
    changed = sum(1 for url in both if new[url] != old[url])
    changes = PageChanges(
        new=sum(1 for url in new if url not in old),
        changed=changed,
        unchanged=len(both) - changed,
        gone=sum(1 for url in old if url not in merged),
        kept=len(kept),
    )
    return [r for url in sorted(merged) for r in merged[url]], changes
