"""robots.txt per RFC 9309: 2xx is parsed, 4xx means no rules, 5xx or no answer means disallow all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from sitetune.config import CrawlConfig
from sitetune.crawl.fetch import FetchError, RateLimiter, fetch

if TYPE_CHECKING:
    import httpx

ROBOTS_MAX_BYTES = 500_000  # RFC 9309 section 2.5: parse at least 500 KiB


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
    parser: RobotFileParser | None = None

    def allows(self, url: str, user_agent: str) -> bool:
        """Whether ``user_agent`` may fetch ``url``."""
        if self.status == "unreachable":
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(user_agent, url)

    def crawl_delay(self, user_agent: str) -> float:
        """The Crawl-delay for ``user_agent`` in seconds (0 when none)."""
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay is not None else 0.0


def robots_url(url: str) -> str:
    """The robots.txt URL of ``url``'s origin."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


async def load_robots(client: httpx.AsyncClient, url: str, cfg: CrawlConfig, limiter: RateLimiter) -> Robots:
    """Fetch and interpret the robots.txt of ``url``'s origin (redirects followed, size capped)."""
    from dataclasses import replace

    where = robots_url(url)
    capped = replace(cfg, max_bytes=min(cfg.max_bytes, ROBOTS_MAX_BYTES),
                     max_redirects=min(cfg.max_redirects, 5))
    try:
        resp = await fetch(client, where, capped, limiter, html_only=False)
    except FetchError as exc:
        code = int(exc.reason[5:]) if exc.reason.startswith("http-") and exc.reason[5:].isdigit() else None
        if code is not None and 400 <= code < 500 and code != 429:
            return Robots(where, "absent", f"HTTP {code}: no rules, everything allowed")
        return Robots(where, "unreachable", f"{exc}: RFC 9309 says assume everything is disallowed")
    parser = RobotFileParser(where)
    parser.parse(resp.body.decode("utf-8", errors="replace").splitlines())
    parser.modified()  # can_fetch answers False until the parser believes it has read the file
    return Robots(where, "parsed", f"HTTP {resp.status}", parser)
