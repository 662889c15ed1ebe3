"""The HTTP API's request and response bodies (pydantic), built from the pipeline's own types.

A result, another page, a citation and an answer block take their fields from
:class:`~sitetune.search.SearchHit`, :class:`~sitetune.search.PagePlace`, :class:`~sitetune.answer.Citation`
and :class:`~sitetune.answer.AnswerBlock` (declared once there; see :func:`fields_of`) and are filled from
them; the API adds only what is its own (deep links, quoted spans, descriptions for the OpenAPI document).
"""

# No ``from __future__ import annotations``: pydantic and FastAPI read these annotations at run time.

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from sitetune.answer import Citation
from sitetune.config import MAX_QUESTION_CHARS, MAX_RESULTS
from sitetune.search.types import PagePlace, SearchHit
from sitetune.serve.deeplinks import opening_link

#: The library's longest question; a server takes at most ``ServeConfig.max_query_chars`` (no more than this).
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


def fields_of(record: type, *, leave_out: Sequence[str] = ()) -> type[BaseModel]:
    """A pydantic base with the fields (names, types, order) of the dataclass ``record``.

    The API's bodies subclass it, so a result or a citation is declared once, by the pipeline's own type,
    and the API adds only what is its own (links, quotes, descriptions).
    """
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], ...) for f in dataclasses.fields(record) if f.name not in leave_out
    }
    return create_model(f"_{record.__name__}Fields", **fields)


class Place(fields_of(PagePlace)):  # type: ignore[misc]
    """Another page a repeated section appears on."""


class Span(BaseModel):
    """Characters ``text[start:end]`` of a result."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Hit(fields_of(SearchHit, leave_out=("also_on", "see_also"))):  # type: ignore[misc]
    """One search result. ``text`` is page text: render it as text, never as HTML or Markdown."""

    link: str = Field(description="``url`` with a text fragment pointing at the section's opening words.")
    also_on: list[Place] = Field(description="The other pages the same text appears on (boilerplate).")
    see_also: list[Place] = Field(
        default_factory=list,
        description="The section of another page this one sends the reader to for the detail (two-step answers).",
    )
    quoted: list[Span] = Field(
        default_factory=list, description="Parts of ``text`` the answer quotes (empty for /search)."
    )

    @classmethod
    def of(cls, hit: SearchHit, quoted: Sequence[tuple[int, int]] = ()) -> "Hit":
        """The result for ``hit`` (its fields, the other pages included), with its link and quoted spans."""
        link = opening_link(hit.url, hit.text, hit.section_title)
        result: Hit = cls.model_validate(
            {**dataclasses.asdict(hit), "link": link, "quoted": [{"start": a, "end": b} for a, b in quoted]}
        )
        return result


class SearchResponse(BaseModel):
    query: str
    k: int
    page: str | None
    results: list[Hit]
    took_ms: float


class CitationOut(fields_of(Citation)):  # type: ignore[misc]
    n: int = Field(description="The number used as [n] in the answer text.")
    link: str = Field(description="``url`` with a text fragment pointing at the quoted passages.")
    quotes: list[str] = Field(description="The passages of the section this citation quotes, verbatim.")

    @classmethod
    def of(cls, citation: Citation, link: str, quotes: Sequence[str]) -> "CitationOut":
        """The citation ``citation`` (its fields) with its link and the passages it quotes."""
        result: CitationOut = cls.model_validate(
            {**dataclasses.asdict(citation), "link": link, "quotes": list(quotes)}
        )
        return result


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

    # The longest question is the server's ServeConfig.max_query_chars and max_query_words, checked by the
    # endpoint (so the 422 names that limit); the OpenAPI document shows the character limit as maxLength.
    question: str = Field(
        min_length=1,
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

    # Checked by the endpoint, not a pattern: a malformed id gets "not an answer id", not a regex message.
    id: str = Field(
        min_length=1,
        max_length=64,
        description="The answer's ``log_id`` (32 hex digits, handed out by this server).",
        examples=["3f2a9c0d41b7e8650c1d2e3f4a5b6c7d"],
    )
    helpful: bool = Field(description="True for a thumbs up, false for a thumbs down.")


class FeedbackResponse(BaseModel):
    recorded: bool


class RefreshHealth(BaseModel):
    """The store's last refresh, from its ``refresh.json`` (:mod:`sitetune.serve.refreshwatch`)."""

    last_attempt: str | None = Field(None, description="When the last attempt finished (ISO 8601, UTC).")
    outcome: str | None = Field(None, description="success or failure.")
    error: str | None = Field(None, description="Why it failed; the served store was left as it was.")
    stage: str | None = Field(None, description="Where it ended: crawl, corpus, drift, train, index or done.")
    seconds: float | None = None
    generation: int | None = Field(None, description="The generation it left served.")
    last_success: str | None = Field(None, description="When the last successful refresh finished.")
    running: bool = Field(False, description="A refresh is running now.")
    successes: int = 0
    failures: int = 0


class Health(BaseModel):
    status: str
    model: str | None
    pages: int
    llm: bool
    #: The store generation served, seconds since it was committed, and why a newer one is not served
    #: (``None`` when nothing failed); see :mod:`sitetune.serve.reload`.
    generation: int | None = None
    generation_age_s: float | None = None
    reload_error: str | None = None
    #: The last refresh of the store (``None``: never refreshed), and whether the corpus has moved further
    #: from the model's training corpus than ``sitetune refresh --stale-threshold`` allows.
    refresh: RefreshHealth | None = None
    model_stale: bool | None = None
    corpus_changed_since_training: float | None = None


class Pages(BaseModel):
    pages: list[str]
