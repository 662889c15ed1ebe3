"""A disk cache of fetched pages keyed by URL, so a re-run sends conditional requests and resumes.

Each entry is two files named by the URL's SHA-1: ``.body`` (the bytes) and ``.json`` (URL, validators,
Content-Type). The body is written first and the metadata last, both atomically, so an interrupted
crawl leaves only complete entries and the next run picks up where it stopped.

A URL that answered 404 or 410 is remembered apart, in ``.dead.json`` (URL, status, when), the way HTTP
caches keep such answers heuristically (RFC 9111 section 4.2.2): a later crawl need not ask again for a
dead link every page still carries. Caches written before these files existed simply have none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sitetune.atomic import atomic_path, atomic_write_text


@dataclass(frozen=True)
class CacheEntry:
    """What the cache remembers about one URL."""

    url: str
    content_type: str
    etag: str | None
    last_modified: str | None
    #: When the body was last known current (Unix seconds: fetched, or revalidated with a 304); compared
    #: with a sitemap's ``<lastmod>`` to skip the request. ``None`` in entries written before it existed.
    fetched_at: float | None = None


@dataclass(frozen=True)
class DeadEntry:
    """A URL that answered 404 or 410 (a dead link), and when."""

    url: str
    status: int
    #: When it answered so (Unix seconds).
    at: float


class PageCache:
    """Pages on disk under ``root`` (created on first write).

    Args:
        root: The cache folder; several crawls of one site may share it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _stem(self, url: str) -> Path:
        return self.root / hashlib.sha1(url.encode("utf-8")).hexdigest()

    def _dead_path(self, url: str) -> Path:
        return self._stem(url).with_suffix(".dead.json")

    def get(self, url: str) -> tuple[CacheEntry, bytes] | None:
        """The entry and body for ``url``, or None when absent or unreadable (treated as a miss)."""
        stem = self._stem(url)
        try:
            meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
            body = stem.with_suffix(".body").read_bytes()
            entry = CacheEntry(**meta)
        except (OSError, ValueError, TypeError):
            return None
        return (entry, body) if entry.url == url else None

    def validators(self, url: str) -> dict[str, str]:
        """Conditional-request headers for ``url`` (empty when nothing is cached)."""
        hit = self.get(url)
        if hit is None:
            return {}
        entry = hit[0]
        headers = {}
        if entry.etag:
            headers["If-None-Match"] = entry.etag
        if entry.last_modified:
            headers["If-Modified-Since"] = entry.last_modified
        return headers

    def touch(self, url: str, when: float) -> None:
        """Record that ``url``'s cached body was confirmed current at ``when`` (a 304); no-op when absent."""
        hit = self.get(url)
        if hit is not None:
            entry = dataclasses.replace(hit[0], fetched_at=when)
            atomic_write_text(self._stem(url).with_suffix(".json"), json.dumps(asdict(entry), ensure_ascii=False))

    def put(self, entry: CacheEntry, body: bytes) -> None:
        """Store ``body`` under ``entry.url``; skipped without a validator (it could never be revalidated)."""
        if not (entry.etag or entry.last_modified):
            return
        stem = self._stem(entry.url)
        with atomic_path(stem.with_suffix(".body")) as tmp:
            tmp.write_bytes(body)
        atomic_write_text(stem.with_suffix(".json"), json.dumps(asdict(entry), ensure_ascii=False))

    def dead(self, url: str) -> DeadEntry | None:
        """When ``url`` last answered 404 or 410, or None when it did not (or the record is unreadable)."""
        try:
            entry = DeadEntry(**json.loads(self._dead_path(url).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return entry if entry.url == url else None

    def mark_dead(self, url: str, status: int, when: float) -> None:
        """Record that ``url`` answered ``status`` (404 or 410) at ``when``; its page entry, if any, stays."""
        atomic_write_text(self._dead_path(url), json.dumps(asdict(DeadEntry(url, status, when)), ensure_ascii=False))

    def forget_dead(self, url: str) -> None:
        """Drop ``url``'s dead-link record (it answered again); no-op when there is none."""
        self._dead_path(url).unlink(missing_ok=True)
