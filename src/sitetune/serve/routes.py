"""The endpoints: ``GET /healthz``, ``/pages``, ``/search``, ``/``, ``POST /answer``, ``/feedback`` and ``/metrics``.

Each is a module-level function over the app's :class:`~sitetune.serve.state.ServiceState`
(``service(request)``); ``create_app`` includes :data:`router` and adds ``/metrics`` (:func:`prometheus_metrics`)
only when metrics are on. Two parameters of the OpenAPI document depend on the server, ``q``'s ``maxLength``
(``ServeConfig.max_query_chars``) and ``page``'s enum (the served pages): ``create_app`` writes them into the
document. Search and answer work runs under the model lock, admitted by ``ServiceState.admission``.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint signatures at run time.

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.answer import Answer
from sitetune.answer.answerer import LLM_FAILED_WARNING, LLM_PAUSED_WARNING, Retrieval
from sitetune.serve.deeplinks import opening_link, quote_link, quoted_spans
from sitetune.serve.errors import InvalidInput
from sitetune.serve.fairlock import client_key
from sitetune.serve.metrics import CONTENT_TYPE, ServeMetrics
from sitetune.serve.querylog import MalformedAnswerId, QueryLog, UnknownAnswerId, section_entry
from sitetune.serve.querysize import check_query_size
from sitetune.serve.reload import Served
from sitetune.serve.schemas import (
    MAX_K,
    AnswerBlockOut,
    AnswerRequest,
    AnswerResponse,
    CitationOut,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Hit,
    Pages,
    SearchResponse,
)
from sitetune.serve.state import service

STATIC_DIR = Path(__file__).resolve().parent / "static"
_LOG = logging.getLogger(__name__)

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

router = APIRouter()


def _check_page(live: Served, page: str | None, field: str) -> None:
    if page is not None and page not in live.known_pages:
        shown = page if len(page) <= 80 else page[:77] + "..."
        raise InvalidInput(field, f"unknown page '{shown}' (GET /pages lists the {len(live.pages)} pages)")


# On the event loop: a sync endpoint would wait for a threadpool thread, and under load every one of them
# may be waiting on the model lock or an LLM. Never rate-limited. Keep it to memory and a small stat/read.
@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz(request: Request) -> Health:
    """Liveness, what is loaded, and which generation of the store is served (and since when)."""
    state = service(request)
    live = state.follower.current
    refreshes = state.refreshes
    return Health(status="ok", model=state.model_name, pages=len(live.pages), llm=state.llm is not None,
                  **state.follower.health(), **(refreshes.health() if refreshes is not None else {}))


@router.get("/pages", response_model=Pages, tags=["service"])
def list_pages(request: Request) -> Pages:
    """Page names, for the programme filter (``page=`` of /search and /answer)."""
    return Pages(pages=service(request).follower.current.pages)


@router.get("/search", response_model=SearchResponse, responses=_ERRORS, tags=["search"])
async def search(
    request: Request,
    # The document's maxLength (ServeConfig.max_query_chars) is set by create_app; check_query_size checks
    # it, naming the limit.
    q: str = Query(min_length=1, pattern=r"\S", description="The query."),
    k: int = Query(default=5, ge=1, le=MAX_K, description="Results wanted."),
    # The document's enum (the served pages) is set by create_app, and follows a store switch.
    page: str | None = Query(default=None, description="Only sections of this page (see GET /pages)."),
) -> SearchResponse:
    """Hybrid search over the pages' sections, best first."""
    state = service(request)
    check_query_size(q, "q", state.config)
    live = state.follower.current
    _check_page(live, page, "page")
    start = time.perf_counter()
    client = client_key(request.scope)

    def work() -> SearchResponse:
        with state.model_lock.hold(client):
            hits = live.searcher.search(q, k=k, page=page)
        took = (time.perf_counter() - start) * 1000
        return SearchResponse(
            query=q, k=k, page=page, results=[Hit.of(h) for h in hits], took_ms=round(took, 2)
        )

    return await state.admission.run(work)


@router.post(
    "/answer",
    response_model=AnswerResponse,
    tags=["answer"],
    responses={**_ERRORS, 413: {"model": ErrorResponse, "description": "Request body too large"}},
)
async def answer(body: AnswerRequest, request: Request) -> AnswerResponse:
    """An answer made of the best-matching sentences, each cited [n]; "not found" when none matches."""
    state = service(request)
    live = state.follower.current
    answerer = live.answerer
    check_query_size(body.question, "body.question", state.config)
    _check_page(live, body.page, "body.page")
    start = time.perf_counter()
    client = client_key(request.scope)

    def retrieve() -> Retrieval:
        with state.model_lock.hold(client):
            return answerer.retrieve(body.question, k=body.k, page=body.page)

    def respond(retrieved: Retrieval) -> AnswerResponse:
        # The LLM call, if any, is made here: after the model lock is released, so a slow endpoint
        # never holds up searches.
        generate_start = time.perf_counter()
        result = answerer.generate(retrieved, fallback=True)
        if state.metrics is not None:
            called = answerer.calls_llm(retrieved)
            _record_answer(state.metrics, result, called, time.perf_counter() - generate_start)
        out = _answer_out(result, body.question, (time.perf_counter() - start) * 1000)
        if state.query_log is not None:
            out.log_id = _log_answer(state.query_log, body, result)
        return out

    if state.llm is None:
        return await state.admission.run(lambda: respond(retrieve()))
    retrieved = await state.admission.run(retrieve)
    if not answerer.calls_llm(retrieved):
        return await run_in_threadpool(respond, retrieved)
    if not state.llm_calls.acquire(blocking=False):
        raise StarletteHTTPException(
            503, "generative answers are busy: try again in a moment", headers={"Retry-After": "2"}
        )
    try:
        return await run_in_threadpool(respond, retrieved)
    finally:
        state.llm_calls.release()


@router.post(
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
    state = service(request)
    query_log = state.query_log
    if query_log is None:
        raise StarletteHTTPException(404, "feedback is not collected: the server keeps no query log")
    wait = state.feedback_limit.acquire(request.client.host if request.client is not None else "")
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


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The web page (``sitetune/serve/static/index.html``)."""
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


def prometheus_metrics(request: Request) -> Response:
    """``GET /metrics``: the Prometheus exposition, registered by ``create_app`` only when metrics are on.

    Outside the OpenAPI document (it is not JSON), outside admission control and any rate limit, and never
    in the query log; the Host check applies as to every path.
    """
    state = service(request)
    if state.metrics is None:  # not registered then; a 404 like any unknown path all the same
        raise StarletteHTTPException(404, "Not Found")
    if state.refreshes is not None:
        state.refreshes.poll()
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


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
