"""The HTTP API's request and response bodies (pydantic), built from the pipeline's own types.

A result, a citation and an answer block are made from :class:`~sitetune.search.SearchHit`,
:class:`~sitetune.answer.Citation` and :class:`~sitetune.answer.AnswerBlock` (their fields, validated), plus
what only the API adds (deep links, quoted spans); the field descriptions here are the OpenAPI document's.
"""

# No ``from __future__ import annotations``: pydantic and FastAPI read these annotations at run time.

import dataclasses
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sitetune.answer import Citation
from sitetune.config import MAX_QUESTION_CHARS, MAX_RESULTS
from sitetune.search.types import SearchHit
from sitetune.serve.deeplinks import opening_link
from sitetune.serve.querylog import ID_PATTERN

MAX_QUERY_CHARS = MAX_QUESTION_CHARS
MAX_K = MAX_RESULTS


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(description="The parameter or body field at fault, e.g. 'q' or 'body.k'.")
    message: str = Field(description="What is wrong with it.")


class ErrorResponse(BaseModel):
    """Every 4xx answer: one readable line plus the fields at fault."""

    detail: str = Field(description="A readable summary, e.g. 'q: must not be empty or only whitespace'.")
    errors: list[FieldError] = Field(default_factory=list)


class Place(BaseModel):
    """Another page a repeated section appears on."""

    page_name: str
    section_title: str
    url: str


class Span(BaseModel):
    """Characters ``text[start:end]`` of a result."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Hit(BaseModel):
    """One search result. ``text`` is page text: render it as text, never as HTML or Markdown."""

    chunk_id: str
    text: str
    score: float
    page_name: str
    section_title: str
    url: str
    link: str = Field(description="``url`` with a text fragment pointing at the section's opening words.")
    also_on: list[Place] = Field(description="The other pages the same text appears on (boilerplate).")
    quoted: list[Span] = Field(
        default_factory=list, description="Parts of ``text`` the answer quotes (empty for /search)."
    )

    @classmethod
    def of(cls, hit: SearchHit, quoted: Sequence[tuple[int, int]] = ()) -> "Hit":
        """The result for ``hit`` (its fields, the other pages included), with its link and quoted spans."""
        link = opening_link(hit.url, hit.text, hit.section_title)
        return cls.model_validate(
            {**dataclasses.asdict(hit), "link": link, "quoted": [{"start": a, "end": b} for a, b in quoted]}
        )


class SearchResponse(BaseModel):
    query: str
    k: int
    page: str | None
    results: list[Hit]
    took_ms: float


class CitationOut(BaseModel):
    n: int = Field(description="The number used as [n] in the answer text.")
    chunk_id: str
    page_name: str
    section_title: str
    url: str
    link: str = Field(description="``url`` with a text fragment pointing at the quoted passages.")
    quotes: list[str] = Field(description="The passages of the section this citation quotes, verbatim.")

    @classmethod
    def of(cls, citation: Citation, link: str, quotes: Sequence[str]) -> "CitationOut":
        """The citation ``citation`` (its fields) with its link and the passages it quotes."""
        return cls.model_validate({**dataclasses.asdict(citation), "link": link, "quotes": list(quotes)})


class AnswerBlockOut(BaseModel):
    """One structural piece of an extractive answer; ``text`` is these blocks as plain text."""

    kind: Literal["text", "list", "rows"] = Field(
        description='"text": sentences of one paragraph or a lead-in line; "list": list items, each line as '
        'quoted with its "- " marker (a nested item stays inside its item, on indented lines); "rows": table '
        'rows or "key: value" lines, one per line.'
    )
    lines: list[str] = Field(description="The quoted lines, verbatim page text: render as text.")
    n: int | None = Field(default=None, description="The citation [n] this block closes, if any.")

    model_config = ConfigDict(from_attributes=True)


class AnswerRequest(BaseModel):
    """A question, optionally limited to one programme page."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=r"\S",
        examples=["What is the application deadline?"],
    )
    k: int = Field(default=5, ge=1, le=MAX_K, description="Sections returned with the answer.")
    page: str | None = Field(default=None, description="Only sections of this page (see GET /pages).")


class AnswerResponse(BaseModel):
    question: str
    found: bool = Field(description="False when the pages do not answer it; `text` then says so.")
    text: str = Field(description="Plain text with [n] citation markers; render as text.")
    citations: list[CitationOut]
    blocks: list[AnswerBlockOut] = Field(
        default_factory=list,
        description="The extractive answer's structure (a list stays a list); empty when not found or generated.",
    )
    hits: list[Hit] = Field(description="The sections searched (the closest ones when not found).")
    score: float
    mode: str
    warning: str | None = None
    took_ms: float
    log_id: str | None = Field(
        default=None, description="Send it to POST /feedback with a thumbs up or down; null when not logged."
    )


class FeedbackRequest(BaseModel):
    """A reader's verdict on one answer."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="The answer's ``log_id``.", examples=["3f2a9c0d41b7e865"])
    helpful: bool = Field(description="True for a thumbs up, false for a thumbs down.")


class FeedbackResponse(BaseModel):
    recorded: bool


class Health(BaseModel):
    status: str
    model: str | None
    pages: int
    llm: bool


class Pages(BaseModel):
    pages: list[str]
