"""What search returns: typed hits, shared by the CLI, the answerer and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True, eq=False)
class Query:
    """A question as search reads it, made once and passed on.

    :meth:`~sitetune.search.Searcher.read` makes it; ranking, the two-step look-up, the answer and the HTTP
    response take it, so nothing reads or encodes the question again.

    Attributes:
        text: The question as asked (what an LLM is sent and a log records).
        read_as: The text ranking reads: spelling corrected to the site's words when configured.
        vector: The unit vector of ``read_as``, formatted the way the model wants queries.
        pages: Pages the question names (programme detection), most specific first.
        page: The page the search is restricted to (a known page name), if any.
    """

    text: str
    read_as: str
    vector: np.ndarray
    pages: tuple[str, ...] = ()
    page: str | None = None
