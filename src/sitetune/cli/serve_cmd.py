"""``sitetune serve``: the HTTP API and the web page over a store."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated

import typer

from sitetune.answer.llm import LLMConfig
from sitetune.cli import common
from sitetune.cli.refresh_cmd import refresh_schedule
from sitetune.config import MAX_QUESTION_CHARS, Backend, EncoderConfig, SearchConfig, ServeConfig

_ENCODER = EncoderConfig()  # flag defaults come from the configs
_SEARCH = SearchConfig()
_SERVE = ServeConfig()


class LogFormat(enum.StrEnum):
    """``--log-format``'s values (``sitetune.serve.logformat.LOG_FORMATS``; not imported here: slow)."""

    TEXT = "text"
    JSON = "json"


_LOG_FORMAT = LogFormat(_SERVE.log_format)

#: Where a site configuration file keeps each flag's value (docs/config.md); ``store`` is the file's
#: ``[serve] store``, else its ``[site] workdir``'s store.
_FILE_KEYS: dict[str, common.FileKey] = {
    "host": ("serve", "host"),
    "port": ("serve", "port"),
    "model": ("serve", "model"),
    "llm_url": ("llm", "url"),
    "llm_model": ("llm", "model"),
    "llm_key_env": ("llm", "api_key_env"),
    "llm_timeout": ("llm", "timeout_s"),
    "min_score": ("answer", "min_score"),
    "allow_origin": ("serve", "cors_origins", list),
    "max_body_bytes": ("serve", "max_body_bytes"),
    "threads": ("encoder", "threads"),
    "max_in_flight": ("serve", "max_in_flight"),
    "max_llm_calls": ("serve", "max_llm_calls"),
    "max_query_chars": ("serve", "max_query_chars"),
    "max_query_words": ("serve", "max_query_words"),
    "backend": ("encoder", "backend", Backend),
    "fallback": ("encoder", "fallback"),
    "access_log": ("serve", "access_log"),
    "warm": ("serve", "warm_answers"),
    "query_log": ("serve", "query_log", str),
    "sentence_weight": ("search", "sentence_weight"),
    "rerank": ("search", "rerank"),
    "rerank_depth": ("search", "rerank_depth"),
    "rerank_weight": ("search", "rerank_weight"),
    "workers": ("serve", "workers"),
    "pin_workers": ("serve", "pin_workers"),
    "docs": ("serve", "docs"),
    "allowed_host": ("serve", "allowed_hosts", list),
    "keep_alive": ("serve", "keep_alive_s"),
    "header_timeout": ("serve", "header_timeout_s"),
    "max_connections": ("serve", "max_connections"),
    "backlog": ("serve", "backlog"),
    "feedback_per_minute": ("serve", "feedback_per_minute"),
    "rate_limit": ("serve", "rate_limit"),
    "rate_burst": ("serve", "rate_burst"),
    "reload_poll": ("serve", "reload_poll_s"),
    "metrics": ("serve", "metrics"),
    "log_format": ("serve", "log_format", LogFormat),
}


@common.handle_errors
@common.config_file_flags(_FILE_KEYS)
def serve(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store: a directory (embedded, default), milvus://PATH.db (Milvus Lite) or http://HOST:19530 "
            "(default with --config: the file's [serve] store, else its [site] workdir's store)",
        ),
    ] = None,
    config_file: common.ConfigOption = None,
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
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            min=0,
            help="GET /search and POST /answer requests one client address may send per second (after a "
            "burst of --rate-burst); more get an immediate 429 with Retry-After. Per process (--workers N: "
            "N times it). 0: no limit.",
        ),
    ] = _SERVE.rate_limit,
    rate_burst: Annotated[
        int,
        typer.Option("--rate-burst", min=1, help="Such requests a client may send back to back."),
    ] = _SERVE.rate_burst,
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
    refresh_every: Annotated[
        str | None,
        typer.Option(
            "--refresh-every",
            help="Refresh the store on this schedule (e.g. 24h, 6h, 30m, 1h30m): `sitetune refresh` runs in a "
            "child process and the server switches to what it publishes. Needs --refresh-site. Default with "
            "--config: the file's [crawl] refresh_every. See docs/refresh.md.",
        ),
    ] = None,
    refresh_site: Annotated[
        str | None,
        typer.Option("--refresh-site", help="What --refresh-every re-crawls: the site's start URL (or folder); "
                     "default with --config: the file's [site] start."),
    ] = None,
    refresh_args: Annotated[
        str | None,
        typer.Option(
            "--refresh-args",
            help="More options for the scheduled `sitetune refresh`, as one string "
            "(e.g. \"--max-pages 200 --prefix https://www.example.edu/study/\").",
        ),
    ] = None,
) -> None:
    """Serve the search API and the web page for STORE (Ctrl-C stops; a re-index is picked up live).

    With --config site.toml the settings come from the file's [serve], [search], [answer], [encoder] and
    [llm] tables, and its [crawl] refresh_every refreshes the store on that schedule; flags given override them.
    """
    from sitetune.serve import run_server

    site = common.site_config(config_file)
    if store is None and site is not None:
        store = site.store
    if store is None:
        raise common.fail("give --store STORE, or --config FILE (a site configuration file)")
    job = site.job if site is not None else None
    schedule = refresh_schedule(store, refresh_every, refresh_site, refresh_args, site)  # before the model loads
    config = dataclasses.replace(
        job.serve if job is not None else _SERVE,
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
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        reload_poll_s=reload_poll,
        metrics=metrics,
        log_format=log_format.value,
    )
    run_server(
        store,
        config,
        encoder=dataclasses.replace(
            job.encoder if job is not None else _ENCODER, backend=backend, threads=threads, fallback=fallback
        ),
        model=model,
        answer_config=common.answer_config(min_score, job.answer if job is not None else None),
        llm=common.llm_config(llm_url, llm_model, llm_key_env, llm_timeout, job.llm if job is not None else None),
        warm_answers=warm,
        access_log=access_log,
        query_log=query_log,
        log=typer.echo,
        search_config=dataclasses.replace(
            job.search if job is not None else _SEARCH, sentence_weight=sentence_weight, rerank=rerank,
            rerank_depth=rerank_depth, rerank_weight=rerank_weight,
        ),
        refresh=schedule,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)
