"""Run the app under uvicorn: the one place ``sitetune serve`` and ``sitetune run`` start a server.

Connection limits (a deadline for reading each request, keep-alive, connection cap, backlog) come from
:func:`sitetune.serve.connections.server_options`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.config import AnswerConfig, EncoderConfig, SearchConfig, ServeConfig, default_allowed_hosts
from sitetune.serve.connections import server_options

if TYPE_CHECKING:
    from sitetune.answer.llm import LLMConfig
    from sitetune.serve.refresher import RefreshSchedule


def run_server(
    store: str | Path,
    config: ServeConfig | None = None,
    *,
    encoder: EncoderConfig | None = None,
    model: str | Path | None = None,
    answer_config: AnswerConfig | None = None,
    llm: LLMConfig | None = None,
    warm_answers: bool = True,
    access_log: bool = False,
    query_log: str | Path | None = None,
    log: Callable[[str], object] = print,
    search_config: SearchConfig | None = None,
    refresh: RefreshSchedule | None = None,
) -> None:
    """Open ``store`` and serve the API and web page on ``config.host:config.port`` until interrupted.

    Connections are bounded by :func:`server_options`; without ``config.allowed_hosts`` the Host header must
    name the bound address or loopback (:func:`sitetune.config.default_allowed_hosts`).

    With ``config.workers`` above 1, that many processes serve on the one socket, each opening the store
    and loading the model itself (:mod:`sitetune.serve.workers`); with ``encoder.threads`` 0 each worker
    then gets an equal share of this process's CPUs (at least one thread).

    Args:
        store: A store built by ``sitetune index``.
        config: Address, body limit, admission limit and CORS origins.
        encoder: Query encoder settings (backend, threads).
        model: Query model (default: the model that built the store).
        answer_config: Extractive answer settings.
        llm: Generative answers through an OpenAI-compatible endpoint; ``None`` answers extractively.
        warm_answers: Encode every answer sentence before the first request.
        access_log: Log every request (with the client's IP address, next to the query in the URL).
        query_log: Append questions and feedback to this JSON-lines file (see
            :mod:`sitetune.serve.querylog`); ``None`` logs nothing.
        log: Receives the lines with the URLs, printed once the model is loaded (with ``config.log_format``
            ``"json"`` they are log records instead).
        search_config: Search settings (``rerank=False`` serves without the model folder's reranker).
        refresh: Refresh the store on this schedule, in a child process (:mod:`sitetune.serve.refresher`);
            ``None``: never (a timer or a person runs ``sitetune refresh``).

    Raises:
        InputError: ``config.workers`` below 1, several workers over Milvus Lite, a bad query log path or
            ``$SITETUNE_FEEDBACK_KEY``, an ``allowed_hosts`` pattern Starlette cannot use, or a
            ``cors_origins`` entry that is not an origin.
        SitetuneError: The store or model cannot be opened (in a worker: a worker failed to start).
    """
    import uvicorn

    from sitetune.search import Searcher
    from sitetune.serve.app import create_app
    from sitetune.serve.logformat import configure_logging, say, uvicorn_log_options
    from sitetune.serve.metrics import monitoring_line
    from sitetune.serve.middleware import check_allowed_hosts, check_origins
    from sitetune.serve.querylog import FEEDBACK_KEY_ENV, QueryLog
    from sitetune.serve.reload import Follow, install_sighup, store_opener
    from sitetune.serve.workers import WorkerSettings, check_workers, run_workers

    config = config or ServeConfig()
    configure_logging(config.log_format)  # before the store opens, so its lines are JSON too
    if config.log_format == "json":
        log = say  # the lines below become log records, so every line of output is a JSON object
    if not config.allowed_hosts:
        config = replace(config, allowed_hosts=default_allowed_hosts(config.host))
    check_allowed_hosts(config.allowed_hosts)
    config = replace(config, cors_origins=check_origins(config.cors_origins))
    check_workers(store, config.workers)
    questions = QueryLog(query_log) if query_log is not None else None  # a bad path fails before the model loads
    encoder = encoder or EncoderConfig()
    if config.workers > 1:
        if encoder.threads == 0:  # torch's default in every worker would oversubscribe the cores
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            encoder = replace(encoder, threads=max(1, cpus // config.workers))
        settings = WorkerSettings(
            store=str(store), serve=config, encoder=encoder, model=None if model is None else str(model),
            answer=answer_config, llm=llm, search=search_config, warm_answers=warm_answers,
            query_log=None if questions is None else str(questions.path),
        )
        previous_key = os.environ.get(FEEDBACK_KEY_ENV)
        if previous_key is None:  # one key for every worker, so each accepts the ids the others issued
            os.environ[FEEDBACK_KEY_ENV] = secrets.token_hex(32)
        try:
            with _scheduled(refresh, log):
                run_workers(settings, access_log=access_log, log=log)
        finally:
            if previous_key is None:
                os.environ.pop(FEEDBACK_KEY_ENV, None)
        return
    with Searcher.open(store, encoder, model, search_config) as searcher:
        app = create_app(searcher, config, answer_config=answer_config, llm=llm,
                         model_name=Path(searcher.model_path).name, warm_answers=warm_answers,
                         query_log=questions,
                         follow=Follow(str(store), store_opener(store, encoder, model, search_config)))
        install_sighup(app.state.follower)  # SIGHUP: look at the store now (its default would stop the server)
        shown = f"[{config.host}]" if ":" in config.host else config.host
        docs = "API docs /docs, " if config.docs else ""
        log(f"sitetune serving {store} at http://{shown}:{config.port}/ ({docs}OpenAPI /openapi.json)")
        if questions is not None:
            log(f"logging questions and feedback to {questions.path} (no IP addresses or cookies)")
        log(monitoring_line(config))
        try:
            with _scheduled(refresh, log):
                uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=access_log,
                            **server_options(config), **uvicorn_log_options(config.log_format))
        finally:
            app.state.follower.close()


@contextlib.contextmanager
def _scheduled(refresh: RefreshSchedule | None, log: Callable[[str], object]) -> Iterator[None]:
    """Run ``refresh``'s schedule for the block (nothing when ``None``)."""
    if refresh is None:
        yield
        return
    from sitetune.durations import format_duration
    from sitetune.serve.refresher import RefreshScheduler

    scheduler = RefreshScheduler(refresh)
    log(f"refreshing {refresh.store} every {format_duration(refresh.every_s)} in a child process (sitetune refresh)")
    scheduler.start()
    try:
        yield
    finally:
        scheduler.stop()
