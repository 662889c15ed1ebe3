"""The HTTP API and the web page: ``create_app(searcher, config)`` builds the FastAPI app.

Endpoints: ``GET /healthz``, ``GET /pages``, ``GET /search``, ``POST /answer``, ``POST /feedback``, the
OpenAPI document at ``/openapi.json`` (``/docs`` shows it), and the single page at ``/`` with its files under
``/static``. Citations and results carry deep links (:mod:`sitetune.serve.deeplinks`); with a
:class:`~sitetune.serve.querylog.QueryLog`, questions and feedback are logged.
The model is loaded once (inside the searcher) and shared; endpoints are sync functions so FastAPI runs
encoding in its threadpool, never on the event loop.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint signatures at run time, and
# the page filter's schema is built from the searcher's page list inside create_app.

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.answer import Answer, Answerer, LLMConfig, ReuseLastQuery, SearcherLike
from sitetune.config import MAX_QUESTION_CHARS, MAX_RESULTS, AnswerConfig, ServeConfig
from sitetune.search.types import SearchHit
from sitetune.serve.deeplinks import opening_link, quote_link, quoted_spans
from sitetune.serve.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from sitetune.serve.querylog import ID_PATTERN, QueryLog, section_entry

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_QUERY_CHARS = MAX_QUESTION_CHARS
MAX_K = MAX_RESULTS
T = TypeVar("T")
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_LOG = logging.getLogger(__name__)


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
        return cls(
            chunk_id=hit.chunk_id,
            text=hit.text,
            score=hit.score,
            page_name=hit.page_name,
            section_title=hit.section_title,
            url=hit.url,
            link=opening_link(hit.url, hit.text, hit.section_title),
            also_on=[
                Place(page_name=p.page_name, section_title=p.section_title, url=p.url) for p in hit.also_on
            ],
            quoted=[Span(start=a, end=b) for a, b in quoted],
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


class AnswerBlockOut(BaseModel):
    """One structural piece of an extractive answer; ``text`` is these blocks as plain text."""

    kind: Literal["text", "list", "rows"] = Field(
        description='"text": sentences of one paragraph or a lead-in line; "list": list items, each line as '
        'quoted with its "- " marker (a nested item stays inside its item, on indented lines); "rows": table '
        'rows or "key: value" lines, one per line.'
    )
    lines: list[str] = Field(description="The quoted lines, verbatim page text: render as text.")
    n: int | None = Field(default=None, description="The citation [n] this block closes, if any.")


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


class InvalidInput(Exception):
    """A request that passed the schema but names something that does not exist (an unknown page)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_FRIENDLY: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda ctx: "is required",
    "string_too_short": lambda ctx: "must not be empty",
    "string_too_long": lambda ctx: f"must be at most {ctx.get('max_length')} characters",
    "string_pattern_mismatch": lambda ctx: "must not be empty or only whitespace",
    "greater_than_equal": lambda ctx: f"must be between 1 and {MAX_K}",
    "less_than_equal": lambda ctx: f"must be between 1 and {MAX_K}",
    "int_parsing": lambda ctx: "must be a whole number",
    "int_type": lambda ctx: "must be a whole number",
    "int_from_float": lambda ctx: "must be a whole number",
    "string_type": lambda ctx: "must be a string",
    "extra_forbidden": lambda ctx: "is not a known field",
    "json_invalid": lambda ctx: "is not valid JSON",
    "model_attributes_type": lambda ctx: "must be a JSON object",
    "dict_type": lambda ctx: "must be a JSON object",
}


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header"):
            loc = loc[1:]
        field = ".".join(loc) or "request"
        if loc[:1] == ["body"] and (len(loc) == 1 or err.get("type") == "json_invalid"):
            field = "body"  # json_invalid's location ends in a character offset, not a field
        friendly = _FRIENDLY.get(str(err.get("type")))
        message = friendly(err.get("ctx") or {}) if friendly else str(err.get("msg", "is invalid"))
        out.append(FieldError(field=field, message=message))
    return out


def _error(status: int, detail: str, errors: Sequence[FieldError] = ()) -> JSONResponse:
    return JSONResponse(ErrorResponse(detail=detail, errors=list(errors)).model_dump(), status_code=status)


def _answer_out(answer: Answer, question: str, took_ms: float) -> AnswerResponse:
    texts = {h.chunk_id: h.text for h in answer.hits}
    citations = []
    quoted: dict[str, list[tuple[int, int]]] = {}
    for c in answer.citations:
        text = texts.get(c.chunk_id, "")
        spans = quoted_spans(answer.text, c.n, text) if answer.found else []
        quoted.setdefault(c.chunk_id, []).extend(spans)
        quotes = [text[a:b] for a, b in spans]
        citations.append(
            CitationOut(
                n=c.n,
                chunk_id=c.chunk_id,
                page_name=c.page_name,
                section_title=c.section_title,
                url=c.url,
                link=quote_link(c.url, text, spans) if spans else opening_link(c.url, text, c.section_title),
                quotes=quotes,
            )
        )
    return AnswerResponse(
        question=question,
        found=answer.found,
        text=answer.text,
        citations=citations,
        blocks=[AnswerBlockOut(kind=b.kind, lines=list(b.lines), n=b.n) for b in answer.blocks],  # type: ignore[arg-type]
        hits=[Hit.of(h, sorted(set(quoted.get(h.chunk_id, [])))) for h in answer.hits],
        score=round(answer.score, 4),
        mode=answer.mode,
        warning=answer.warning,
        took_ms=round(took_ms, 2),
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorResponse,
        "description": "Busy: too many requests in flight; retry after Retry-After",
    },
    422: {
        "model": ErrorResponse,
        "description": "Invalid input (empty query, k out of range, unknown page...)",
    },
}


def create_app(
    searcher: SearcherLike,
    config: ServeConfig | None = None,
    *,
    answer_config: AnswerConfig | None = None,
    llm: LLMConfig | None = None,
    model_name: str | None = None,
    warm_answers: bool = False,
    query_log: QueryLog | None = None,
) -> FastAPI:
    """Build the app around an opened searcher.

    Args:
        searcher: Opened once by the caller; its model serves every request.
        config: Body limit and CORS origins (none by default: no CORS headers are sent).
        answer_config: Extractive answer settings.
        llm: Generative mode for ``POST /answer``; ``None`` answers extractively.
        model_name: Shown by ``/healthz``.
        warm_answers: Encode every sentence of the store before serving, so first answers are fast.
        query_log: Where questions and feedback are logged; ``None`` logs nothing (the default).
    """
    config = config or ServeConfig()
    pages = list(searcher.pages)
    known_pages = frozenset(pages)
    if not isinstance(searcher.encoder, ReuseLastQuery):
        # /answer encodes the question in search and again to score sentences: make the second free.
        searcher.encoder = ReuseLastQuery(searcher.encoder)  # type: ignore[misc]
    answerer = Answerer(searcher, answer_config, llm)
    if warm_answers:
        answerer.warm(getattr(getattr(searcher, "reader", None), "chunks", ()))
    # Fast tokenizers are not safe to call from several threads at once ("Already borrowed"), and on a
    # CPU server encodes gain nothing from overlapping; one lock serialises model work, not requests.
    model_lock = threading.Lock()
    # Admission control, counted on the event loop: past max_in_flight a request gets an immediate 503
    # rather than joining a queue it would time out in (which also wastes the work done for it later).
    in_flight = 0

    async def run_model(work: Callable[[], T]) -> T:
        nonlocal in_flight
        if in_flight >= config.max_in_flight:
            raise StarletteHTTPException(
                503, "the server is busy: try again in a moment", headers={"Retry-After": "1"}
            )
        in_flight += 1
        try:
            # Model work runs in the threadpool so the event loop keeps accepting and answering.
            return await run_in_threadpool(work)
        finally:
            in_flight -= 1

    app = FastAPI(
        title="sitetune",
        version="0.1.0",
        summary="Search a site's pages and get answers cited to them.",
        description="Retrieved text is page content: render it as text, never as HTML or Markdown.",
    )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        return _error(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors)

    @app.exception_handler(InvalidInput)
    async def on_unknown(request: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, str(exc), [FieldError(field=exc.field, message=exc.message)])

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body it cannot decode (bytes that are not UTF-8): a malformed
            # request like any other, so the same 422 shape with the field named.
            message = "is not valid JSON text (UTF-8 expected)"
            return _error(422, f"body: {message}", [FieldError(field="body", message=message)])
        response = _error(exc.status_code, detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    def check_page(page: str | None, field: str) -> None:
        if page is not None and page not in known_pages:
            shown = page if len(page) <= 80 else page[:77] + "..."
            raise InvalidInput(field, f"unknown page '{shown}' (GET /pages lists the {len(pages)} pages)")

    @app.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> Health:
        """Liveness and what is loaded."""
        return Health(status="ok", model=model_name, pages=len(pages), llm=llm is not None)

    @app.get("/pages", response_model=Pages, tags=["service"])
    def list_pages() -> Pages:
        """Page names, for the programme filter (``page=`` of /search and /answer)."""
        return Pages(pages=pages)

    @app.get("/search", response_model=SearchResponse, responses=_ERRORS, tags=["search"])
    async def search(
        q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S", description="The query."),
        k: int = Query(default=5, ge=1, le=MAX_K, description="Results wanted."),
        page: str | None = Query(
            default=None,
            description="Only sections of this page (see GET /pages).",
            json_schema_extra={"enum": pages},
        ),
    ) -> SearchResponse:
        """Hybrid search over the pages' sections, best first."""
        check_page(page, "page")
        start = time.perf_counter()

        def work() -> SearchResponse:
            with model_lock:
                hits = searcher.search(q, k=k, page=page)
            took = (time.perf_counter() - start) * 1000
            return SearchResponse(
                query=q, k=k, page=page, results=[Hit.of(h) for h in hits], took_ms=round(took, 2)
            )

        return await run_model(work)

    @app.post(
        "/answer",
        response_model=AnswerResponse,
        tags=["answer"],
        responses={**_ERRORS, 413: {"model": ErrorResponse, "description": "Request body too large"}},
    )
    async def answer(body: AnswerRequest) -> AnswerResponse:
        """An answer made of the best-matching sentences, each cited [n]; "not found" when none matches."""
        check_page(body.page, "body.page")
        start = time.perf_counter()

        def work() -> AnswerResponse:
            with model_lock:
                result = answerer.answer(body.question, k=body.k, page=body.page, fallback=True)
            out = _answer_out(result, body.question, (time.perf_counter() - start) * 1000)
            if query_log is not None:
                out.log_id = _log_answer(query_log, body, result)
            return out

        return await run_model(work)

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        tags=["answer"],
        responses={
            404: {"model": ErrorResponse, "description": "The server keeps no query log (no --query-log)"},
            422: _ERRORS[422],
            413: {"model": ErrorResponse, "description": "Request body too large"},
        },
    )
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """A thumbs up or down for an answer (its ``log_id``), appended to the query log."""
        if query_log is None:
            raise StarletteHTTPException(404, "feedback is not collected: the server keeps no query log")
        try:
            query_log.log_feedback(body.id, body.helpful)
        except OSError as exc:
            _LOG.warning("query log: feedback not written: %s", exc)
            return FeedbackResponse(recorded=False)
        return FeedbackResponse(recorded=True)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    # Only the package's own static folder is served; Starlette (>= 0.49.1) rejects paths leaving it.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static")

    _patch_openapi(app, pages)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, so every response gets them
    return app


def _log_answer(query_log: QueryLog, body: AnswerRequest, result: Answer) -> str | None:
    """Log the question; a log that cannot be written (disk full) costs the entry, never the answer."""
    try:
        return query_log.log_question(
            body.question,
            page=body.page,
            answered=result.found,
            mode=result.mode,
            score=result.score,
            top=[section_entry(h.chunk_id, h.page_name, h.section_title) for h in result.hits],
            cited=[section_entry(c.chunk_id, c.page_name, c.section_title) for c in result.citations],
        )
    except OSError as exc:
        _LOG.warning("query log: question not written: %s", exc)
        return None


def _patch_openapi(app: FastAPI, pages: list[str]) -> None:
    """List the known pages as the enum of ``AnswerRequest.page`` too (the body model is static)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        prop = schema.get("components", {}).get("schemas", {}).get("AnswerRequest", {}).get("properties", {})
        for option in prop.get("page", {}).get("anyOf", []):
            if option.get("type") == "string":
                option["enum"] = pages
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
