"""What search returns: typed hits, shared by the CLI, the answerer and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PagePlace:
    """Another page a duplicated text appears on."""

    page_name: str
    section_title: str
    url: str


@dataclass(frozen=True)
class SearchHit:
    """One result: a unique chunk text at its best-matching occurrence.

    Attributes:
        chunk_id: The chunk's id.
        text: The chunk text.
        score: Fused score (higher is better).
        page_name: Page of the occurrence shown.
        section_title: Section title of that occurrence.
        url: Link to the page.
        also_on: The other pages the same text appears on (boilerplate repeated across pages).
        see_also: For a section that sends the reader to another page of the site for the detail ("English
            level A"), that page's section that best matches the question (a two-step answer); else empty.
    """

    chunk_id: str
    text: str
    score: float
    page_name: str
    section_title: str
    url: str
    also_on: tuple[PagePlace, ...] = field(default_factory=tuple)
    see_also: tuple[PagePlace, ...] = field(default_factory=tuple)
