"""``sitetune serve``: the HTTP API and the web page over a store."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated

import typer

from sitetune.answer.llm import LLMConfig
from sitetune.cli import common
from sitetune.config import MAX_QUESTION_CHARS, EncoderConfig, SearchConfig, ServeConfig

_ENCODER = EncoderConfig()  # flag defaults come from the configs
_SEARCH = SearchConfig()
_SERVE = ServeConfig()


class LogFormat(enum.StrEnum):
    """``--log-format``'s values (``sitetune.serve.logformat.LOG_FORMATS``; not imported here: slow)."""

    TEXT = "text"
    JSON = "json"


_LOG_FORMAT = LogFormat(_SERVE.log_format)


@common.handle_errors
def serve(
    store: common.StoreOption,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = _SERVE.host,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = _SERVE.port,
    model: common.QueryModelOption = None,
    llm_url: common.LlmUrlOption = None,
    llm_model: common.LlmModelOption = None,
    llm_key_env: common.LlmKeyEnvOption = LLMConfig.api_key_env,
    llm_timeout: common.LlmTimeoutOption = LLMConfig.timeout_s,
    min_score: common.MinScoreOption = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            "--cors-origin",
            help="Let pages on this origin (scheme://host[:port]) call the API from the browser, e.g. the "
            "widget at /widget.js (repeatable; default none: no CORS headers).",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body.")
    ] = _SERVE.max_body_bytes,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="Torch threads (0: torch's default).")
    ] = _ENCODER.threads,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", min=1, help="Requests admitted at once; more get 503.")
    ] = _SERVE.max_in_flight,
    max_llm_calls: Annotated[
        int,
        typer.Option(
            "--max-llm-calls", min=1, help="With --llm-url, answers waiting on the LLM at once; more get 503."
        ),
    ] = _SERVE.max_llm_calls,
    max_query_chars: Annotated[
        int,
        typer.Option(
            "--max-query-chars", min=1, max=MAX_QUESTION_CHARS,
            help="Longest query or question accepted (characters); longer gets 422. Bounds one request's model work.",
        ),
    ] = _SERVE.max_query_chars,
    max_query_words: Annotated[
        int, typer.Option("--max-query-words", min=1, help="Most words in a query or question; more gets 422.")
    ] = _SERVE.max_query_words,
    backend: common.BackendOption = common.DEFAULT_BACKEND,
    fallback: common.FallbackOption = _ENCODER.fallback,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="Log every request: the client's IP address with the URL, which holds /search queries "
            "(personal data; the query log keeps no addresses).",
        ),
    ] = False,
    warm: Annotated[
        bool, typer.Option("--warm/--no-warm", help="Encode all answer sentences before serving.")
    ] = True,
    query_log: Annotated[
        str | None,
        typer.Option(
            "--query-log",
            help="Append questions and thumbs up/down to this JSON-lines file (off by default; "
            "no IP addresses or cookies; 10 MiB files, 5 kept). `sitetune report` summarises it.",
        ),
    ] = None,
    sentence_weight: common.SentenceWeightOption = _SEARCH.sentence_weight,
    rerank: common.RerankOption = _SEARCH.rerank,
    rerank_depth: common.RerankDepthOption = _SEARCH.rerank_depth,
    rerank_weight: common.RerankWeightOption = _SEARCH.rerank_weight,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes on the one port, each with its own model (the store's vectors are "
            "memory-mapped, in memory once); --max-in-flight is per worker.",
        ),
    ] = _SERVE.workers,
    pin_workers: Annotated[
        bool,
        typer.Option(
            "--pin-workers/--no-pin-workers",
            help="With --workers N and at least N CPUs, run each worker on its own CPUs.",
        ),
    ] = _SERVE.pin_workers,
    docs: Annotated[
        bool,
        typer.Option(
            "--docs/--no-docs",
            help="Serve Swagger UI at /docs and ReDoc at /redoc (they load scripts from a CDN); "
            "/openapi.json is served either way.",
        ),
    ] = _SERVE.docs,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Accept requests whose Host header names this host (repeatable; '*.example.org', '*' for "
            "any). Default: the --host address, localhost, 127.0.0.1 and [::1]; others get 400.",
        ),
    ] = None,
    keep_alive: Annotated[
        int,
        typer.Option("--keep-alive", min=1, help="Seconds an idle keep-alive connection stays open."),
    ] = _SERVE.keep_alive_s,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=0.1,
            help="Seconds a connection has to send a whole request (headers and body); slower clients "
            "are disconnected.",
        ),
    ] = _SERVE.header_timeout_s,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            min=1,
            help="Open connections per process; past it requests get 503 (--workers N: per worker).",
        ),
    ] = _SERVE.max_connections,
    backlog: Annotated[
        int | None,
        typer.Option(
            "--backlog",
            min=1,
            help="Connections the kernel queues before they are accepted (default: 2048, or with "
            "--workers N max(64, --max-in-flight x N)).",
        ),
    ] = _SERVE.backlog,
    feedback_per_minute: Annotated[
        int,
        typer.Option(
            "--feedback-per-minute",
            min=1,
            help="POST /feedback requests one client address may send per minute (after a burst of "
            f"{_SERVE.feedback_burst}); more get 429.",
        ),
    ] = _SERVE.feedback_per_minute,
    reload_poll: Annotated[
        float,
        typer.Option(
            "--reload-poll",
            min=0,
            help="Seconds between looks at the store's CURRENT: a new generation is loaded beside the served "
            "one and switched to (0: only on SIGHUP or POST /admin/reload with $SITETUNE_ADMIN_TOKEN).",
        ),
    ] = _SERVE.reload_poll_s,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="Serve Prometheus metrics at GET /metrics (request counts and latencies, answers not found, "
            "store size and age; no queries or addresses). Restrict it at the proxy if it must not be public.",
        ),
    ] = _SERVE.metrics,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: the usual lines; json: one JSON object a line (timestamp, level, logger, message, "
            "request id, method, path, status, duration), with a line per request.",
        ),
    ] = _LOG_FORMAT,
) -> None:
    """Serve the search API and the web page for STORE (Ctrl-C stops; a re-index is picked up live)."""
    from sitetune.serve import run_server

    config = dataclasses.replace(
        _SERVE,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        cors_origins=tuple(allow_origin or ()),
        max_in_flight=max_in_flight,
        max_llm_calls=max_llm_calls,
        max_query_chars=max_query_chars,
        max_query_words=max_query_words,
        workers=workers,
        pin_workers=pin_workers,
        docs=docs,
        allowed_hosts=tuple(allowed_host or ()),
        keep_alive_s=keep_alive,
        header_timeout_s=header_timeout,
        max_connections=max_connections,
        backlog=backlog,
        feedback_per_minute=feedback_per_minute,
        reload_poll_s=reload_poll,
        metrics=metrics,
        log_format=log_format.value,
    )
    run_server(
        store,
        config,
        encoder=dataclasses.replace(_ENCODER, backend=backend, threads=threads, fallback=fallback),
        model=model,
        answer_config=common.answer_config(min_score),
        llm=common.llm_config(llm_url, llm_model, llm_key_env, llm_timeout),
        warm_answers=warm,
        access_log=access_log,
        query_log=query_log,
        log=typer.echo,
        search_config=dataclasses.replace(
            _SEARCH, sentence_weight=sentence_weight, rerank=rerank, rerank_depth=rerank_depth,
            rerank_weight=rerank_weight,
        ),
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)
