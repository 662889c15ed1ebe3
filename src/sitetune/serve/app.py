"""The HTTP API and the web page: ``create_app(searcher, config)`` builds the FastAPI app.

The bodies are in :mod:`sitetune.serve.schemas`, the error shape in :mod:`sitetune.serve.errors`.

Endpoints: ``GET /healthz``, ``GET /pages``, ``GET /site`` (the site's name and example questions,
:mod:`sitetune.serve.siteintro`), ``GET /search``, ``POST /answer``, ``POST /feedback``, the
OpenAPI document at ``/openapi.json`` (``/docs`` shows it with ``ServeConfig.docs``), and the single page at
``/`` with its files under ``/static``, and ``GET /widget.js`` for other sites' pages (:mod:`sitetune.serve.widget`).
Citations and results carry deep links (:mod:`sitetune.serve.deeplinks`); with a
:class:`~sitetune.serve.querylog.QueryLog`, questions and feedback are logged.
The model is loaded once (inside the searcher) and shared; endpoints are sync functions so FastAPI runs
encoding in its threadpool, never on the event loop.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint signatures at run time, and
# the page filter's schema is built from the searcher's page list inside create_app.

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.answer import Answer, LLMConfig, SearcherLike
from sitetune.answer.answerer import LLM_FAILED_WARNING, LLM_PAUSED_WARNING, Retrieval
from sitetune.config import AnswerConfig, ServeConfig
from sitetune.serve.deeplinks import opening_link, quote_link, quoted_spans
from sitetune.serve.errors import InvalidInput, error_response, field_errors
from sitetune.serve.fairlock import FairLock, client_key
from sitetune.serve.metrics import CONTENT_TYPE, ServeMetrics, searcher_store_source
from sitetune.serve.middleware import (
    BodyLimitMiddleware,
    ListedOriginsMiddleware,
    SecurityHeadersMiddleware,
    WorkerHeaderMiddleware,
    check_allowed_hosts,
    check_origins,
)
from sitetune.serve.observe import ObserveMiddleware
from sitetune.serve.querylog import MalformedAnswerId, QueryLog, UnknownAnswerId, section_entry
from sitetune.serve.querysize import check_query_limits, check_query_size
from sitetune.serve.ratelimit import RateLimiter, RateLimitMiddleware, request_limiter
from sitetune.serve.refreshwatch import RefreshWatch
from sitetune.serve.reload import Follow, Served, StoreFollower, prepare
from sitetune.serve.reload_api import add_reload_endpoint
from sitetune.serve.schemas import (
    MAX_K,
    AnswerBlockOut,
    AnswerRequest,
    AnswerResponse,
    CitationOut,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    FieldError,
    Health,
    Hit,
    Pages,
    SearchResponse,
)
from sitetune.serve.siteintro import add_site_endpoint
from sitetune.serve.widget import add_widget_endpoint

STATIC_DIR = Path(__file__).resolve().parent / "static"
T = TypeVar("T")
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_LOG = logging.getLogger(__name__)


def _answer_out(answer: Answer, question: str, took_ms: float) -> AnswerResponse:
    texts = {h.chunk_id: h.text for h in answer.hits}
    citations = []
    quoted: dict[str, list[tuple[int, int]]] = {}
    for c in answer.citations:
        text = texts.get(c.chunk_id, "")
        spans = quoted_spans(answer.text, c.n, text) if answer.found else []
        quoted.setdefault(c.chunk_id, []).extend(spans)
        quotes = [text[a:b] for a, b in spans]
        link = quote_link(c.url, text, spans) if spans else opening_link(c.url, text, c.section_title)
        citations.append(CitationOut.of(c, link, quotes))
    return AnswerResponse(
        question=question,
        found=answer.found,
        text=answer.text,
        citations=citations,
        blocks=[AnswerBlockOut.model_validate(b) for b in answer.blocks],
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
    429: {
        "model": ErrorResponse,
        "description": "Too many requests from this address (ServeConfig.rate_limit); retry after Retry-After",
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
    inline_model_work: bool = False,
    follow: Follow | None = None,
) -> FastAPI:
    """Build the app around an opened searcher.

    Args:
        searcher: Opened once by the caller; its model serves every request.
        config: Body limit, CORS origins (none by default: no CORS headers are sent), ``/docs``, allowed
            Host headers (none: not checked) and the feedback rate limit.
        answer_config: Extractive answer settings.
        llm: Generative mode for ``POST /answer``; ``None`` answers extractively.
        model_name: Shown by ``/healthz``.
        warm_answers: Encode every sentence of the store before serving, so first answers are fast.
        query_log: Where questions and feedback are logged; ``None`` logs nothing (the default).
        inline_model_work: Run searches and answers on the event loop instead of the threadpool, one at
            a time. For a worker of ``serve --workers N``: a busy worker then accepts no connection, so
            the kernel hands each new one to an idle worker (measured on 2 cores: 2 workers 335 searches/s
            inline, 190 from the threadpool, where busy workers kept accepting and queued requests
            while the other worker idled). Waiting connections queue in the listening socket's backlog
            instead of meeting ``max_in_flight``'s 503.
        follow: Follow the store: switch to each new generation it commits (:mod:`sitetune.serve.reload`;
            ``app.state.follower`` is the :class:`StoreFollower`, already watching; close it when done).
            ``None``: serve ``searcher`` until the app stops.
    """
    config = config or ServeConfig()
    check_query_limits(config)
    limiter = request_limiter(config)  # a bad rate fails before anything starts
    # Fast tokenizers are not safe to call from several threads at once ("Already borrowed"), and on a
    # CPU server encodes gain nothing from overlapping; one lock serialises model work, not requests.
    # Waiters take turns by client (fairlock.py), so one client's queued requests cannot starve another's.
    model_lock = FairLock()

    def make_served(opened: SearcherLike) -> Served:
        return prepare(opened, answer_config=answer_config, llm=llm, warm=warm_answers, model_lock=model_lock)

    # Every request reads follower.current once and uses that generation's searcher, answerer and pages.
    follower = StoreFollower(
        make_served(searcher),
        store=None if follow is None else follow.store,
        open_generation=None if follow is None else follow.open_generation,
        make_served=make_served,
        poll_s=config.reload_poll_s,
        on_admin_reload=None if follow is None else follow.on_admin_reload,
    )
    pages = list(follower.current.pages)  # the OpenAPI document's page enum, kept to the served generation
    # Admission control, counted on the event loop: past max_in_flight a request gets an immediate 503
    # rather than joining a queue it would time out in (which also wastes the work done for it later).
    in_flight = 0
    # LLM answers wait on the network outside the model lock and outside max_in_flight; at most
    # max_llm_calls of them at once, past that an immediate 503 (acquired without blocking, on the loop).
    llm_calls = threading.BoundedSemaphore(config.max_llm_calls)

    async def run_model(work: Callable[[], T]) -> T:
        nonlocal in_flight
        if in_flight >= config.max_in_flight:
            raise StarletteHTTPException(
                503, "the server is busy: try again in a moment", headers={"Retry-After": "1"}
            )
        in_flight += 1
        try:
            if inline_model_work:
                return work()
            # Model work runs in the threadpool so the event loop keeps accepting and answering.
            return await run_in_threadpool(work)
        finally:
            in_flight -= 1

    check_allowed_hosts(config.allowed_hosts)
    origins = check_origins(config.cors_origins)  # a bad origin fails before anything starts
    app = FastAPI(
        title="sitetune",
        version="0.1.0",
        summary="Search a site's pages and get answers cited to them.",
        description="Retrieved text is page content: render it as text, never as HTML or Markdown.",
        # Swagger UI and ReDoc load their scripts from a CDN (no integrity hashes): only when asked for.
        docs_url="/docs" if config.docs else None,
        redoc_url="/redoc" if config.docs else None,
    )
    # app.state.metrics: what a scheduled refresh records its runs in. The store gauges read the generation
    # served at each scrape, so they follow a live switch.
    metrics = (
        ServeMetrics(lambda: searcher_store_source(follower.current.searcher)()) if config.metrics else None
    )
    app.state.metrics = metrics
    # The store's refresh.json, whoever refreshes it: /healthz shows the last refresh, /metrics counts each.
    refreshes = RefreshWatch(follow.store, metrics) if follow is not None else None

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        return error_response(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors)

    @app.exception_handler(InvalidInput)
    async def on_unknown(request: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(422, str(exc), [FieldError(field=exc.field, message=exc.message)])

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body it cannot decode (bytes that are not UTF-8): a malformed
            # request like any other, so the same 422 shape with the field named.
            message = "is not valid JSON text (UTF-8 expected)"
            return error_response(422, f"body: {message}", [FieldError(field="body", message=message)])
        response = error_response(exc.status_code, detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    def check_page(live: Served, page: str | None, field: str) -> None:
        if page is not None and page not in live.known_pages:
            shown = page if len(page) <= 80 else page[:77] + "..."
            raise InvalidInput(field, f"unknown page '{shown}' (GET /pages lists the {len(live.pages)} pages)")

    # On the event loop: a sync endpoint would wait for a threadpool thread, and under load every one of them
    # may be waiting on the model lock or an LLM. Never rate-limited. Keep it to memory and a small stat/read.
    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness, what is loaded, and which generation of the store is served (and since when)."""
        live = follower.current
        return Health(status="ok", model=model_name, pages=len(live.pages), llm=llm is not None,
                      **follower.health(), **(refreshes.health() if refreshes is not None else {}))

    @app.get("/pages", response_model=Pages, tags=["service"])
    def list_pages() -> Pages:
        """Page names, for the programme filter (``page=`` of /search and /answer)."""
        return Pages(pages=follower.current.pages)

    @app.get("/search", response_model=SearchResponse, responses=_ERRORS, tags=["search"])
    async def search(
        request: Request,
        q: str = Query(
            min_length=1, pattern=r"\S", description="The query.",
            json_schema_extra={"maxLength": config.max_query_chars},  # checked below, naming the limit
        ),
        k: int = Query(default=5, ge=1, le=MAX_K, description="Results wanted."),
        page: str | None = Query(
            default=None,
            description="Only sections of this page (see GET /pages).",
            json_schema_extra={"enum": pages},
        ),
    ) -> SearchResponse:
        """Hybrid search over the pages' sections, best first."""
        check_query_size(q, "q", config)
        live = follower.current
        check_page(live, page, "page")
        start = time.perf_counter()
        client = client_key(request.scope)

        def work() -> SearchResponse:
            with model_lock.hold(client):
                hits = live.searcher.search(q, k=k, page=page)
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
    async def answer(body: AnswerRequest, request: Request) -> AnswerResponse:
        """An answer made of the best-matching sentences, each cited [n]; "not found" when none matches."""
        live = follower.current
        answerer = live.answerer
        check_query_size(body.question, "body.question", config)
        check_page(live, body.page, "body.page")
        start = time.perf_counter()
        client = client_key(request.scope)

        def retrieve() -> Retrieval:
            with model_lock.hold(client):
                return answerer.retrieve(body.question, k=body.k, page=body.page)

        def respond(retrieved: Retrieval) -> AnswerResponse:
            # The LLM call, if any, is made here: after the model lock is released, so a slow endpoint
            # never holds up searches.
            generate_start = time.perf_counter()
            result = answerer.generate(retrieved, fallback=True)
            if metrics is not None:
                called = answerer.calls_llm(retrieved)
                _record_answer(metrics, result, called, time.perf_counter() - generate_start)
            out = _answer_out(result, body.question, (time.perf_counter() - start) * 1000)
            if query_log is not None:
                out.log_id = _log_answer(query_log, body, result)
            return out

        if llm is None:
            return await run_model(lambda: respond(retrieve()))
        retrieved = await run_model(retrieve)
        if not answerer.calls_llm(retrieved):
            return await run_in_threadpool(respond, retrieved)
        if not llm_calls.acquire(blocking=False):
            raise StarletteHTTPException(
                503, "generative answers are busy: try again in a moment", headers={"Retry-After": "2"}
            )
        try:
            return await run_in_threadpool(respond, retrieved)
        finally:
            llm_calls.release()

    feedback_limit = RateLimiter(config.feedback_per_minute, config.feedback_burst, per=60)

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        tags=["answer"],
        responses={
            404: {
                "model": ErrorResponse,
                "description": "The server keeps no query log (no --query-log), or gave no answer with this id",
            },
            422: {"model": ErrorResponse, "description": "Invalid input (an id that is not an answer's log_id...)"},
            413: {"model": ErrorResponse, "description": "Request body too large"},
            429: {
                "model": ErrorResponse,
                "description": "Too much feedback from this address; retry after Retry-After",
            },
        },
    )
    def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
        """A thumbs up or down for an answer (its ``log_id``), appended to the query log.

        Only ids this server handed out are accepted, at most ``MAX_FEEDBACK_PER_ANSWER`` votes per answer
        are written (``recorded`` is false past that), and each client address may send
        ``feedback_per_minute`` requests a minute.
        """
        if query_log is None:
            raise StarletteHTTPException(404, "feedback is not collected: the server keeps no query log")
        wait = feedback_limit.acquire(request.client.host if request.client is not None else "")
        if wait:
            raise StarletteHTTPException(
                429, "too much feedback from this address: try again later", headers={"Retry-After": str(wait)}
            )
        try:
            recorded = query_log.log_feedback(body.id, body.helpful)
        except MalformedAnswerId:
            raise InvalidInput(
                "body.id", "is not an answer id: send the log_id of an answer from POST /answer (32 hex digits)"
            ) from None
        except UnknownAnswerId:
            raise StarletteHTTPException(
                404, "body.id: no answer was given with this id (ids expire when the server restarts)"
            ) from None
        except OSError as exc:
            _LOG.warning("query log: feedback not written: %s", exc)
            return FeedbackResponse(recorded=False)
        return FeedbackResponse(recorded=recorded)

    if metrics is not None:
        # Outside the OpenAPI document (it is not JSON), outside admission control and any rate limit, and
        # never in the query log; the Host check applies as to every path.
        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics() -> Response:
            if refreshes is not None:
                refreshes.poll()
            return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    # Only the package's own static folder is served; Starlette (>= 0.49.1) rejects paths leaving it.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static")

    _patch_openapi(app, pages, config.max_query_chars)

    def on_switch(served: Served) -> None:
        pages[:] = served.pages  # the /search parameter's enum holds this very list
        app.openapi_schema = None

    follower.on_switch = on_switch
    add_reload_endpoint(app, follower)
    add_site_endpoint(app, lambda: follower.current.searcher)
    add_widget_endpoint(app)
    app.state.follower = follower
    follower.start()
    if origins:  # only the listed origins get CORS headers, never with credentials
        app.add_middleware(ListedOriginsMiddleware, origins=origins)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.allowed_hosts:  # a Host header naming another site (DNS rebinding) gets 400
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts), www_redirect=False)
    if limiter is not None:  # before routing and validation, so a refused request costs next to nothing
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware)  # outside the others, so every response gets them
    if config.workers > 1:
        app.add_middleware(WorkerHeaderMiddleware)  # which of `serve --workers N` answered
    app.add_middleware(ObserveMiddleware, metrics=metrics)  # outermost: ids, counts and logs what clients get
    return app


def _record_answer(metrics: ServeMetrics, result: Answer, called_llm: bool, seconds: float) -> None:
    """Count an answer; where LLM mode asked the endpoint, the call's latency or why it was not made."""
    metrics.count_answer(result.mode, result.found)
    if not called_llm:
        return
    if result.warning == LLM_PAUSED_WARNING:
        metrics.count_llm_skipped()
    else:
        failed = result.warning is not None and result.warning.startswith(LLM_FAILED_WARNING)
        metrics.observe_llm_call(seconds, failed=failed)


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


def _patch_openapi(app: FastAPI, pages: list[str], max_query_chars: int) -> None:
    """List the known pages as the enum of ``AnswerRequest.page`` too, and the question's ``maxLength``.

    The body model is static; both depend on the server (its store, ``ServeConfig.max_query_chars``).
    """
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        prop = schema.get("components", {}).get("schemas", {}).get("AnswerRequest", {}).get("properties", {})
        if "question" in prop:
            prop["question"]["maxLength"] = max_query_chars
        for option in prop.get("page", {}).get("anyOf", []):
            if option.get("type") == "string":
                option["enum"] = pages
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
