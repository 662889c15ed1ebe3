"""URL normalisation, prefix scoping and crawler-trap detection.

Two links to one page must compare equal (fragments, default ports, parameter order, session ids), and
URL spaces that never end (calendars, ``?page=N`` chains, growing query strings) must be cut off.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from sitetune.config import CrawlConfig

# Parameters that name a visitor or a campaign, never a different page.
_VOLATILE_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_[ce]id|sessionid|session_id|sessid|sid|phpsessid|jsessionid|_ga)$",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form of ``url`` (resolved against ``base``), or None if it is not http(s).

    Drops the fragment and volatile parameters (session ids, utm_*), lower-cases scheme and host,
    removes a default port, resolves ``.``/``..`` segments and sorts the query parameters.
    """
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    if "." in path:
        trailing = path.endswith("/")
        path = posixpath.normpath(path)
        path = "/" if path in (".", "//") else path.replace("//", "/")
        if trailing and not path.endswith("/"):
            path += "/"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = [(k, v) for k, v in pairs if not _VOLATILE_PARAMS.match(k)]
    query = urlencode(sorted(params))
    return urlunsplit((scheme, netloc, path, query, ""))


def in_prefix(url: str, prefix: str) -> bool:
    """Whether ``url`` lies under ``prefix`` (same scheme and host, path starting with the prefix path)."""
    return url.startswith(prefix) or url.rstrip("/") == prefix.rstrip("/")


def default_prefix(start_url: str) -> str:
    """The start URL's folder: ``https://h/a/b.html`` gives ``https://h/a/``."""
    parts = urlsplit(start_url)
    folder = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    return urlunsplit((parts.scheme, parts.netloc, folder, "", ""))


def url_pattern(url: str) -> str:
    """The URL's shape: digit runs folded, query values dropped (``/cal/2026/05?d=1`` -> ``/cal/0/0?d``)."""
    parts = urlsplit(url)
    keys = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return f"{parts.netloc}{_DIGITS.sub('0', parts.path)}?{'&'.join(keys)}"


class TrapGuard:
    """Counts URL patterns and says why a URL looks like a crawler trap (None when it does not).

    Args:
        config: Supplies ``max_url_length``, ``max_query_params``, ``max_depth`` and ``max_per_pattern``.
    """

    def __init__(self, config: CrawlConfig) -> None:
        self.config = config
        self.patterns: Counter[str] = Counter()

    def check(self, url: str, depth: int) -> tuple[str, str] | None:
        """Return ``(reason, detail)`` when ``url`` at ``depth`` should be skipped, else count it and None."""
        cfg = self.config
        if len(url) > cfg.max_url_length:
            return "url-too-long", f"{len(url)} characters > {cfg.max_url_length}"
        n_params = len(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if n_params > cfg.max_query_params:
            return "query-trap", f"{n_params} query parameters > {cfg.max_query_params}"
        segments = [s for s in urlsplit(url).path.split("/") if s]
        if len(segments) != len(set(segments)) and len(segments) - len(set(segments)) >= 3:
            return "path-trap", "a path segment repeats three or more times"
        if depth > cfg.max_depth:
            return "too-deep", f"{depth} links from the start page > {cfg.max_depth}"
        pattern = url_pattern(url)
        if self.patterns[pattern] >= cfg.max_per_pattern:
            return "pattern-trap", f"more than {cfg.max_per_pattern} URLs shaped {pattern}"
        self.patterns[pattern] += 1
        return None
