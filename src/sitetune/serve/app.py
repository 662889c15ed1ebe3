"""The HTTP API and the web page: ``create_app(searcher, config)`` builds the FastAPI app.

The endpoints are module-level functions in :mod:`sitetune.serve.routes`, reading what the app holds (settings,
the served generation, locks and counters) from one :class:`~sitetune.serve.state.ServiceState` that
``create_app`` builds and keeps at ``app.state.service``. The bodies are in :mod:`sitetune.serve.schemas`, the
error shape and the exception handlers in :mod:`sitetune.serve.errors`.

Endpoints: ``GET /healthz``, ``GET /pages``, ``GET /site`` (the site's name and example questions,
:mod:`sitetune.serve.siteintro`), ``GET /search``, ``POST /answer``, ``POST /feedback``, the
OpenAPI document at ``/openapi.json`` (``/docs`` shows it with ``ServeConfig.docs``), and the single page at
``/`` with its files under ``/static``, and ``GET /widget.js`` for other sites' pages (:mod:`sitetune.serve.widget`).
Citations and results carry deep links (:mod:`sitetune.serve.deeplinks`); with a
:class:`~sitetune.serve.querylog.QueryLog`, questions and feedback are logged.
The model is loaded once (inside the searcher) and shared; model work (encoding, ranking) runs in the
threadpool (or inline for a worker of ``serve --workers N``), never blocking the event loop's health checks.
"""

import threading
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sitetune.answer import LLMConfig, SearcherLike
from sitetune.config import AnswerConfig, ServeConfig
from sitetune.serve.errors import EXCEPTION_HANDLERS
from sitetune.serve.fairlock import FairLock
from sitetune.serve.metrics import ServeMetrics, searcher_store_source
from sitetune.serve.middleware import (
    BodyLimitMiddleware,
    ListedOriginsMiddleware,
    SecurityHeadersMiddleware,
    WorkerHeaderMiddleware,
    check_allowed_hosts,
    check_origins,
)
from sitetune.serve.observe import ObserveMiddleware
from sitetune.serve.querylog import QueryLog
from sitetune.serve.querysize import check_query_limits
from sitetune.serve.ratelimit import RateLimiter, RateLimitMiddleware, request_limiter
from sitetune.serve.refreshwatch import RefreshWatch
from sitetune.serve.reload import Follow, Served, StoreFollower, prepare
from sitetune.serve.reload_api import add_reload_endpoint
from sitetune.serve.routes import STATIC_DIR, prometheus_metrics, router
from sitetune.serve.siteintro import add_site_endpoint
from sitetune.serve.state import Admission, ServiceState
from sitetune.serve.widget import add_widget_endpoint

__all__ = ["STATIC_DIR", "create_app"]


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
        exception_handlers=EXCEPTION_HANDLERS,
    )
    # app.state.metrics: what a scheduled refresh records its runs in. The store gauges read the generation
    # served at each scrape, so they follow a live switch.
    metrics = (
        ServeMetrics(lambda: searcher_store_source(follower.current.searcher)()) if config.metrics else None
    )
    app.state.metrics = metrics
    app.state.service = ServiceState(
        config=config,
        follower=follower,
        model_lock=model_lock,
        admission=Admission(config.max_in_flight, inline=inline_model_work),
        llm=llm,
        llm_calls=threading.BoundedSemaphore(config.max_llm_calls),
        model_name=model_name,
        metrics=metrics,
        # The store's refresh.json, whoever refreshes it: /healthz shows the last refresh, /metrics counts each.
        refreshes=RefreshWatch(follow.store, metrics) if follow is not None else None,
        query_log=query_log,
        feedback_limit=RateLimiter(config.feedback_per_minute, config.feedback_burst, per=60),
    )
    app.include_router(router)
    if metrics is not None:
        app.add_api_route("/metrics", prometheus_metrics, include_in_schema=False)

    # Only the package's own static folder is served; Starlette (>= 0.49.1) rejects paths leaving it.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static")

    _patch_openapi(app, pages, config.max_query_chars)

    def on_switch(served: Served) -> None:
        pages[:] = served.pages  # the OpenAPI document's page enums hold this very list
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


def _patch_openapi(app: FastAPI, pages: list[str], max_query_chars: int) -> None:
    """Write what depends on the server into the OpenAPI document: the query's limit and the page enum.

    The question's ``maxLength`` is ``ServeConfig.max_query_chars``, the ``page`` filter's enum the known
    pages, in ``/search``'s parameters and ``AnswerRequest`` alike. The endpoints and the body model are
    static. ``pages`` is the very list a store switch updates (the document is then rebuilt on its next
    request).
    """
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        search = schema.get("paths", {}).get("/search", {}).get("get", {})
        for param in search.get("parameters", []):
            if param.get("name") == "q":
                param["schema"]["maxLength"] = max_query_chars
            elif param.get("name") == "page":
                param["schema"]["enum"] = pages
        prop = schema.get("components", {}).get("schemas", {}).get("AnswerRequest", {}).get("properties", {})
        if "question" in prop:
            prop["question"]["maxLength"] = max_query_chars
        for option in prop.get("page", {}).get("anyOf", []):
            if option.get("type") == "string":
                option["enum"] = pages
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
