"""What an answer is: text with [n] markers, the citations they point at, and the sections searched."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
class AnswerBlock:
    """One structural piece of an extractive answer, as quoted: a paragraph, a list, or rows of a table.

    Attributes:
        kind: ``"text"`` (sentences of one paragraph, or a lead-in line), ``"list"`` (list items, each
            line verbatim with its ``- `` marker, nested items indented under their item) or ``"rows"``
            (``key: value`` lines of a table or a run of dates).
        lines: The quoted lines: a text block's sentences, a list's items, the rows.
        n: The citation number this block closes (``[n]`` after it), or None.
        block: Which structural block of its section it came from (used to merge pieces of one list).
    """

    kind: str
    lines: tuple[str, ...]
    n: int | None = None
    block: int = field(default=0, compare=False, repr=False)

    def extended(self, line: str) -> AnswerBlock:
        """This block with one more line."""
        return replace(self, lines=(*self.lines, line))

    def cited(self, n: int) -> AnswerBlock:
        """This block closing citation ``n``."""
        return replace(self, n=n)


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
        blocks: The extractive answer's structure (paragraphs, lists, rows, each closing its citation);
            ``text`` is these blocks as plain text. Empty for "not found" and generated answers.
    """

    text: str
    citations: list[Citation]
    found: bool
    hits: list[SearchHit]
    score: float = 0.0
    mode: str = "extractive"
    warning: str | None = field(default=None)
    blocks: list[AnswerBlock] = field(default_factory=list)
