"""The crawl report: every page fetched and every URL skipped with its reason, saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sitetune.atomic import atomic_write_text


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
            url-too-long, no-text, duplicate, max-pages, crawl-deadline, byte-budget, not-http, ...
        detail: Specifics (the status, the size, the redirect chain, the robots.txt answer).
    """

    url: str
    reason: str
    detail: str = ""


@dataclass
class CrawlReport:
    """What a crawl did; ``write`` saves it as JSON beside the corpus.

    Attributes:
        start_url: Where the crawl began (rebased when the site was served locally).
        prefix: URLs outside it were not followed.
        corpus: The corpus file written (None when nothing was written).
        pages: Pages that produced records, sorted by URL.
        skipped: Every URL skipped, with its reason, sorted by URL.
        robots: robots.txt outcome per origin: "parsed", "absent" or "unreachable" with detail.
        fetched: Pages downloaded in full.
        not_modified: Pages revalidated with a 304 and taken from the cache.
        records: Records written.
        wire_bytes: Bytes received, all requests included.
        duration_s: Wall-clock seconds.
        stopped: Why the crawl stopped early ("max-pages", "crawl-deadline", "byte-budget"), or None.
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

    def skip_reasons(self) -> dict[str, int]:
        """How many URLs were skipped for each reason."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with a ``skip_reasons`` summary added."""
        data = asdict(self)
        data["skip_reasons"] = self.skip_reasons()
        return data

    def write(self, path: str | Path) -> Path:
        """Save as indented JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return path
