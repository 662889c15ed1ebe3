"""robots.txt per RFC 9309: 2xx is parsed, 4xx means no rules, 5xx or no answer means disallow all.

Rules are matched by Protego (Scrapy's parser): the standard library's ``urllib.robotparser`` ignores
``*`` and ``$`` in paths, applies the first matching rule instead of the longest, and reads a
fractional ``Crawl-delay`` as none (measured: 11 of 17 RFC 9309 cases right, Protego 17 of 17).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from protego import Protego

from sitetune.config import CrawlConfig
from sitetune.crawl.fetch import FetchError, RateLimiter, fetch

if TYPE_CHECKING:
    import httpx

    from sitetune.crawl.guard import FetchGuard

_LOG = logging.getLogger(__name__)

# RFC 9309 section 2.5: a parsing limit of at least 500 KiB. A larger file is refused (disallow all)
# rather than cut, since a cut could drop the rules that matter.
ROBOTS_MAX_BYTES = 500 * 1024
#: Longest robots.txt Crawl-delay obeyed, in seconds; a larger one is clamped to it (with a warning and a
#: note in the crawl report). The file is the site's, so any number can be in it: ``Crawl-delay: 1e9``
#: would otherwise park every worker for 31 years. A crawl that wants to wait longer sets ``delay_s``.
MAX_CRAWL_DELAY_S = 30.0


@dataclass
class Robots:
    """The rules of one origin.

    Attributes:
        url: The robots.txt URL.
        status: "parsed", "absent" (4xx: allow all) or "unreachable" (5xx, 429 or no answer: disallow all).
        detail: Why, for the crawl report.
        parser: The parsed rules when ``status`` is "parsed".
    """

    url: str
    status: str
    detail: str = ""
    parser: Protego | None = None

    def allows(self, url: str, user_agent: str) -> bool:
        """Whether ``user_agent`` may fetch ``url``."""
        if self.status == "unreachable":
            return False
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(url, user_agent))

    def requested_delay(self, user_agent: str) -> float:
        """The Crawl-delay the file asks of ``user_agent`` in seconds, as written (0 when none or invalid)."""
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        value = float(delay) if delay is not None else 0.0
        return value if math.isfinite(value) and value > 0 else 0.0

    def crawl_delay(self, user_agent: str) -> float:
        """The Crawl-delay obeyed for ``user_agent`` in seconds: as asked, at most :data:`MAX_CRAWL_DELAY_S`."""
        return min(self.requested_delay(user_agent), MAX_CRAWL_DELAY_S)


def robots_url(url: str) -> str:
    """The robots.txt URL of ``url``'s origin."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


async def load_robots(client: httpx.AsyncClient, url: str, cfg: CrawlConfig, limiter: RateLimiter,
                      guard: FetchGuard) -> Robots:
    """Fetch and interpret the robots.txt of ``url``'s origin (size capped).

    Redirects are followed within what ``guard`` allows (the crawl's origin, public addresses). A redirect
    it refuses, like a redirect loop, leaves the file unread: "unreachable", so nothing is fetched there.

    Raises:
        FetchError: ``crawl-deadline`` only: the request could not start within the crawl's time budget
            (that says nothing about the site's rules, so it is not cached as an answer).
    """
    from dataclasses import replace

    where = robots_url(url)
    capped = replace(cfg, max_bytes=ROBOTS_MAX_BYTES, max_redirects=min(cfg.max_redirects, 5))
    try:
        resp = await fetch(client, where, capped, limiter, guard=guard, html_only=False)
    except FetchError as exc:
        if exc.reason == "crawl-deadline":
            raise
        code = int(exc.reason[5:]) if exc.reason.startswith("http-") and exc.reason[5:].isdigit() else None
        if code is not None and 400 <= code < 500 and code != 429:
            return Robots(where, "absent", f"HTTP {code}: no rules, everything allowed")
        return Robots(where, "unreachable", f"{exc}: RFC 9309 says assume everything is disallowed")
    parser = Protego.parse(resp.body.decode("utf-8", errors="replace"))
    robots = Robots(where, "parsed", f"HTTP {resp.status}", parser)
    asked = robots.requested_delay(cfg.user_agent)
    if asked > MAX_CRAWL_DELAY_S:
        _LOG.warning("%s asks for a Crawl-delay of %g s; waiting %g s instead", where, asked, MAX_CRAWL_DELAY_S)
        robots.detail += f"; Crawl-delay {asked:g} s clamped to {MAX_CRAWL_DELAY_S:g} s"
    return robots
