"""What an answer is: text with [n] markers, the citations they point at, and the sections searched."""

from __future__ import annotations

from dataclasses import dataclass, field

from sitetune.search.types import SearchHit

#: The whole answer when no retrieved sentence scores above the threshold: no made-up answer.
NOT_FOUND_TEXT = "Not found in the pages: none of the retrieved sections answers this question."


@dataclass(frozen=True)
class Citation:
    """A source the answer cites as ``[n]``.

    Attributes:
        n: The number used in the answer text (1-based, in order of first use).
        chunk_id: The cited section's chunk id.
        page_name: Its page.
        section_title: Its section title.
        url: Link to its page.
    """

    n: int
    chunk_id: str
    page_name: str
    section_title: str
    url: str

    @classmethod
    def of(cls, n: int, hit: SearchHit) -> Citation:
        """The citation numbered ``n`` for ``hit``."""
        return cls(n, hit.chunk_id, hit.page_name, hit.section_title, hit.url)


@dataclass(frozen=True)
class Answer:
    """An answer to a question.

    Attributes:
        text: Plain text; each claim is followed by ``[n]`` markers. ``NOT_FOUND_TEXT`` when not found.
        citations: The sources the markers point at, numbered 1..len.
        found: False when nothing in the pages answered the question (``text`` says so).
        hits: The retrieved sections (shown as "closest sections" when not found).
        score: The best sentence score (cosine plus lexical term), the one compared with the threshold.
        mode: ``"extractive"`` or ``"llm"``.
        warning: Set when the answer fell back from one mode to another, saying why.
    """

    text: str
    citations: list[Citation]
    found: bool
    hits: list[SearchHit]
    score: float = 0.0
    mode: str = "extractive"
    warning: str | None = field(default=None)
