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

# Query parameters that name a visitor, a session or a campaign, never a different page (``*`` matches
# any tail). Kept, they give one page many URLs (``?utm_source=news``, ``?fbclid=...``, one per visitor):
# each is fetched again, which wastes the crawl budget, and its sections land in the corpus twice.
# Matched case-insensitively against the whole name: ``sid`` is a session id, ``side`` is not.
TRACKING_PARAMS = (
    "utm_*",  # Google Analytics campaigns: utm_source, utm_medium, utm_campaign, utm_term, utm_content, ...
    "gclid", "dclid", "_ga", "_gl",  # Google Ads, Display & Video, Analytics cross-domain linkers
    "fbclid", "igshid",  # Facebook, Instagram
    "msclkid", "yclid", "mc_cid", "mc_eid", "ref_src",  # Microsoft Ads, Yandex, Mailchimp, Twitter/X
    "jsessionid", "phpsessid", "sessionid", "session_id", "sessid", "sid",  # server sessions
)
# Path (matrix) parameters that carry a session id: ``/page.jsp;jsessionid=0A1B`` is ``/page.jsp``.
SESSION_PATH_PARAMS = ("jsessionid", "phpsessid", "sessionid", "session_id", "sessid", "sid")


def _names_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    """One case-insensitive pattern for ``names`` (``*`` matches any tail); use it with ``fullmatch``."""
    return re.compile("|".join(re.escape(n).replace(r"\*", r"\w*") for n in names), re.IGNORECASE)


_VOLATILE_PARAMS = _names_regex(TRACKING_PARAMS)
_SESSION_PATH_PARAM = _names_regex(SESSION_PATH_PARAMS)
_DIGITS = re.compile(r"\d+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _strip_session_path_params(path: str) -> str:
    """``path`` without the ``;name=value`` segment parameters named in :data:`SESSION_PATH_PARAMS`.

    Other segment parameters stay, in their order (``/a;v=2;jsessionid=X/b`` gives ``/a;v=2/b``).
    """
    segments = []
    for segment in path.split("/"):
        name, *params = segment.split(";")
        kept = [p for p in params if not _SESSION_PATH_PARAM.fullmatch(p.split("=", 1)[0])]
        segments.append(";".join([name, *kept]))
    return "/".join(segments)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form of ``url`` (resolved against ``base``), or None if it is not http(s).

    Drops the fragment, session-id path parameters (:data:`SESSION_PATH_PARAMS`) and tracking or session
    query parameters (:data:`TRACKING_PARAMS`), lower-cases scheme and host, removes a default port,
    resolves ``.``/``..`` segments and sorts the remaining query parameters.
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
    if ";" in path:
        path = _strip_session_path_params(path)
    if "." in path:
        trailing = path.endswith("/")
        path = posixpath.normpath(path)
        path = "/" if path in (".", "//") else path.replace("//", "/")
        if trailing and not path.endswith("/"):
            path += "/"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = [(k, v) for k, v in pairs if not _VOLATILE_PARAMS.fullmatch(k)]
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
