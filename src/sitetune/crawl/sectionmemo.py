"""The sections each cached page body was cut into, kept beside the page cache so a re-crawl reuses them.

Sectionizing is most of a re-crawl's work when the site did not change: every page answers 304 and is
read from the cache, and cutting it into sections needs the tokenizer, whose libraries take seconds to
load. A page whose body (SHA-1 of its bytes), Content-Type and URL are the ones recorded here takes its
records from the memo instead, and the tokenizer is loaded only when some page must be sectionized.

Each entry is ``SHA1(url).sections.json`` in the cache folder, stamped with
:func:`~sitetune.sectionize.identity.sectionizer_fingerprint`: after a change to the sectionizer, its
settings, the tokenizer or a library, no entry matches and every page is sectionized again, so the records
are always the ones sectionizing the page now would give. An unreadable or mismatched entry is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from sitetune.atomic import atomic_write_text
from sitetune.config import ChunkingConfig
from sitetune.crawl import encoding
from sitetune.records import SectionRecord
from sitetune.sectionize.identity import sectionizer_fingerprint

#: What a page was cut into: its records, or the reason it yielded none (a "no-text" skip).
Sections = list[SectionRecord] | str


class SectionMemo:
    """Records cut from page bodies, on disk under ``root`` (the page cache's folder).

    Args:
        root: The folder (created on the first write).
        chunking: The chunking settings the records are cut with (part of every entry's stamp).
    """

    def __init__(self, root: Path, chunking: ChunkingConfig) -> None:
        self.root = Path(root)
        # The body is decoded before it is sectionized: that code shapes the records too.
        self.fingerprint = sectionizer_fingerprint(chunking, [Path(encoding.__file__)])

    def _path(self, url: str) -> Path:
        return self.root / (hashlib.sha1(url.encode("utf-8")).hexdigest() + ".sections.json")

    def _stamp(self, url: str, digest: str, content_type: str) -> dict[str, str | None]:
        return {"fingerprint": self.fingerprint, "url": url, "sha1": digest, "content_type": content_type}

    def get(self, url: str, digest: str, content_type: str) -> Sections | None:
        """What the body with SHA-1 ``digest`` at ``url`` was cut into; ``None`` when not recorded."""
        if self.fingerprint is None:
            return None
        try:
            entry = json.loads(self._path(url).read_text(encoding="utf-8"))
            if entry.get("stamp") != self._stamp(url, digest, content_type):
                return None
            found: Sections = (entry["no_text"] if "no_text" in entry else [
                SectionRecord(page_name=row[0], section_title=row[1], section_type=row[2], text=row[3], url=url)
                for row in entry["records"]])
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None
        # The sectionizer gives records or a reason, never an empty list: anything else was not written here.
        return found if isinstance(found, str) or (isinstance(found, list) and found) else None

    def put(self, url: str, digest: str, content_type: str, sections: Sections) -> None:
        """Record what the body with SHA-1 ``digest`` at ``url`` was cut into (every record carries ``url``)."""
        if self.fingerprint is None:
            return
        entry: dict[str, object] = {"stamp": self._stamp(url, digest, content_type)}
        if isinstance(sections, str):
            entry["no_text"] = sections
        else:
            entry["records"] = [[r.page_name, r.section_title, r.section_type, r.text] for r in sections]
        # A memo that cannot be written costs the next crawl time, never this one its pages.
        with contextlib.suppress(OSError):
            atomic_write_text(self._path(url), json.dumps(entry, ensure_ascii=False))
