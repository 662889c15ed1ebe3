"""A disk cache of fetched pages keyed by URL, so a re-run sends conditional requests and resumes.

Each entry is two files named by the URL's SHA-1: ``.body`` (the bytes) and ``.json`` (URL, validators,
Content-Type). The body is written first and the metadata last, both atomically, so an interrupted
crawl leaves only complete entries and the next run picks up where it stopped.
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


class PageCache:
    """Pages on disk under ``root`` (created on first write).

    Args:
        root: The cache folder; several crawls of one site may share it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _stem(self, url: str) -> Path:
        return self.root / hashlib.sha1(url.encode("utf-8")).hexdigest()

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
