"""The section record: one chunk of one page section, the unit every stage passes on.

CSV, JSONL and Parquet files of records are read and written by :mod:`sitetune.recordio`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

# The published model's training text, kept byte for byte: no space before "text:".
CARD_TEXT_TEMPLATE = "page_name: {page_name}text: {text}"

_PART_SUFFIX = re.compile(r"\s*\(Part \d+\)\s*$")


def normalize_text(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return " ".join(text.split())


def chunk_id_of(text: str) -> str:
    """The stable id of a chunk: first 16 hex digits of SHA-1 over its normalized UTF-8 text."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def section_type_of(title: str) -> str:
    """A section's type: its title without a trailing " (Part N)"."""
    return _PART_SUFFIX.sub("", title)


@dataclass(frozen=True, slots=True)
class SectionRecord:
    """One chunk of a page section.

    Attributes:
        page_name: The page's name (its h1, else its <title>).
        section_title: The section heading, with " (Part N)" when a long section was split.
        section_type: The heading without the part suffix.
        text: The chunk's plain text.
        url: Where the page lives (after redirects).
        chunk_id: Derived from ``text`` (see :func:`chunk_id_of`); identical texts share one id.
    """

    page_name: str
    section_title: str
    section_type: str
    text: str
    url: str
    chunk_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunk_id", chunk_id_of(self.text))

    def card_text(self) -> str:
        """The text form the published model was trained on."""
        return CARD_TEXT_TEMPLATE.format(page_name=self.page_name, text=self.text)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with every field, chunk_id included."""
        return asdict(self)
