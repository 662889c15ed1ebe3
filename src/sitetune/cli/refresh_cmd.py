"""``sitetune refresh``: re-crawl a site and bring its store up to date (see docs/refresh.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sitetune.cli import common
from sitetune.cli.common import (
    DEFAULT_BACKEND,
    BackendOption,
    CrawlDeadLinkTtlOption,
    CrawlMaxBytesOption,
    CrawlMaxTimeOption,
    CrawlRetriesOption,
    CrawlTimeoutOption,
    EncodeBatchOption,
    FallbackOption,
    PrecisionOption,
    handle_errors,
    print_json,
)
from sitetune.cli.crawl_cmd import _ALLOW_PRIVATE_HELP
from sitetune.config import Backend, CrawlConfig, EncoderConfig
from sitetune.index.stream import DEFAULT_CHECKPOINT_ROWS

if TYPE_CHECKING:
    from sitetune.serve.refresher import RefreshSchedule
    from sitetune.siteconfig import SiteConfig

_CRAWL = CrawlConfig()  # flag defaults come from the configs, as crawl's and index's do
_ENCODER = EncoderConfig()
_SHARE = {"min": 0.0, "max": 1.0}

#: Where a site configuration file keeps each flag's value (docs/config.md). The store is the file's
#: ``[serve] store``, else ``WORKDIR/store``; the crawl's other fields come from its ``[crawl]`` table.
_FILE_KEYS: dict[str, common.FileKey] = {
    "site": ("site", "start"),
    "prefix": ("site", "prefix"),
    "public_base": ("site", "public_base"),
    "max_pages": ("crawl", "max_pages"),
    "delay": ("crawl", "delay_s"),
    "concurrency": ("crawl", "concurrency"),
    "timeout": ("crawl", "timeout_s"),
    "retries": ("crawl", "retries"),
    "max_bytes": ("crawl", "max_bytes"),
    "max_time": ("crawl", "total_time_s"),
    "dead_link_ttl": ("crawl", "dead_link_ttl_s"),
    "sitemaps": ("crawl", "sitemaps"),
    "allow_private_addresses": ("crawl", "allow_private_addresses"),
    "backend": ("encoder", "backend", Backend),
    "fallback": ("encoder", "fallback"),
    "precision": ("encoder", "precision"),
    "batch_size": ("encoder", "batch_size"),
}


@handle_errors
@common.config_file_flags(_FILE_KEYS)
def refresh(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Argument(
        help="http(s) start URL; or a site folder to serve on 127.0.0.1 and crawl; or 'sample' (default with "
             "--config: the file's [site] start)", metavar="[START_URL]", show_default=False)] = None,
    store: Annotated[str | None, typer.Option(
        "--store", help="Store: a directory (embedded, default), milvus://PATH.db (Milvus Lite) or "
                        "http://HOST:19530 (default with --config: the file's [serve] store, else its [site] "
                        "workdir's store)")] = None,
    config_file: common.ConfigOption = None,
    corpus: Annotated[Path | None, typer.Option(
        "--corpus", help="Corpus file to rewrite (default: the one the served generation was built from); "
                         "its page cache is beside it")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model to index with (default: the one the served generation was built with)")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only crawl URLs under this prefix (default: the start "
                                                    "URL's folder)")] = None,
    max_pages: Annotated[int, typer.Option(min=1, help="Stop after this many pages")] = _CRAWL.max_pages,
    delay: Annotated[float | None, typer.Option(min=0.0, help="Seconds between requests (default: "
                                                              f"{_CRAWL.delay_s:g} for a URL, 0 for a folder)")] = None,
    public_base: Annotated[str | None, typer.Option(
        "--public-base", help="Base URL the records carry instead of the crawled origin")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Requests in flight at once")] = _CRAWL.concurrency,
    timeout: CrawlTimeoutOption = _CRAWL.timeout_s,
    retries: CrawlRetriesOption = _CRAWL.retries,
    max_bytes: CrawlMaxBytesOption = _CRAWL.max_bytes,
    max_time: CrawlMaxTimeOption = _CRAWL.total_time_s,
    dead_link_ttl: CrawlDeadLinkTtlOption = _CRAWL.dead_link_ttl_s,
    cache: Annotated[Path | None, typer.Option(help="Page cache folder (default: CORPUS.cache)")] = None,
    sitemaps: Annotated[bool, typer.Option(
        "--sitemaps/--no-sitemaps", help="Read the site's sitemaps (robots.txt Sitemap: lines, else "
                                         "/sitemap.xml) for URLs and <lastmod>")] = True,
    allow_private_addresses: Annotated[bool, typer.Option("--allow-private-addresses",
                                                          help=_ALLOW_PRIVATE_HELP)] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    fallback: FallbackOption = _ENCODER.fallback,
    precision: PrecisionOption = _ENCODER.precision,
    batch_size: EncodeBatchOption = _ENCODER.batch_size,
    checkpoint_rows: Annotated[int, typer.Option(
        "--checkpoint-rows", min=1, help="New sections per index batch (a killed run resumes from the last)")] = (
        DEFAULT_CHECKPOINT_ROWS
    ),
    stale_threshold: Annotated[float, typer.Option(
        "--stale-threshold", **_SHARE, help="Share of sections changed since the model was trained above which "
                                            "the log and /healthz call it stale")] = 0.2,
    retrain_threshold: Annotated[float | None, typer.Option(
        "--retrain-threshold", **_SHARE, help="Retrain when more than this share of sections changed since the "
                                              "model was trained (default: never retrain)")] = None,
    retrain_out: Annotated[Path | None, typer.Option(
        "--retrain-out", help="Folder for a retrained model (default: beside the current one, time-stamped)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Re-crawl a site and re-index its store with the current model, embedding only changed sections.

    Pages come through the page cache's conditional requests and the site's sitemaps; nothing is written
    when no section changed. A failure at any step leaves the served generation as it was and is recorded in
    STORE/refresh.json, which a running server shows in /healthz. Retrains only with --retrain-threshold.

    Example: sitetune refresh https://www.example.edu/graduate/ --store runs/store
    Example: sitetune refresh sample --store runs/store --corpus runs/sample.csv --json
    Example: sitetune refresh --config site.toml --max-pages 50

    With --config site.toml the site, store and crawl settings come from the file ([site], [crawl],
    [encoder]; see docs/config.md); flags given override them.
    """
    from sitetune.refresh import RefreshOptions, run_refresh
    from sitetune.refresh.run import summary

    file = common.site_config(config_file)
    site, store = _site_and_store(site, store, file)
    defaults = _crawl_defaults(site, file)
    crawl = dataclasses.replace(defaults, max_pages=max_pages, delay_s=defaults.delay_s if delay is None else delay,
                                concurrency=concurrency, timeout_s=timeout, retries=retries, max_bytes=max_bytes,
                                total_time_s=max_time, allow_private_addresses=allow_private_addresses,
                                sitemaps=sitemaps, dead_link_ttl_s=dead_link_ttl)
    encoder = dataclasses.replace(file.job.encoder if file is not None else _ENCODER, backend=backend,
                                  fallback=fallback, precision=precision, batch_size=batch_size)
    options = RefreshOptions(
        site=site, store=store, corpus=corpus, model=model, prefix=prefix, crawl=crawl, cache_dir=cache,
        public_base=public_base, encoder=encoder, checkpoint_rows=checkpoint_rows, stale_threshold=stale_threshold,
        retrain_threshold=retrain_threshold, retrain_out=retrain_out, progress=progress,
        train=file.job.train if file is not None else None,
        default_corpus=Path(file.job.workdir) / "corpus.jsonl" if file is not None else None,
    )
    report = run_refresh(options)
    if as_json:
        print_json(summary(report))
        return
    what = f"generation {report.generation}" + ("" if report.published else " (unchanged)")
    typer.echo(f"pages     {report.pages:>6}  ({report.fetched} downloaded, {report.unchanged_on_server} unchanged "
               f"on the server; {report.new} new, {report.changed} changed, {report.gone} gone, {report.kept} kept)")
    typer.echo(f"sections  {report.sections:>6}  ({report.embedded} embedded, {report.removed} removed) -> {what}")
    if report.drift is not None:
        stale = "  STALE: consider retraining" if report.drift["stale"] else ""
        typer.echo(f"drift     {report.drift['changed']:>6.1%}  of sections changed since the model was trained"
                   + stale)
    typer.echo(f"time      {report.seconds:>6.1f}  s")


def _site_and_store(site: str | None, store: str | None, file: SiteConfig | None) -> tuple[str, str]:
    """The site to crawl and the store to refresh: the command line's, else the configuration file's.

    Raises:
        InputError: Neither gives one (a file that sets ``[site] corpus`` names no site to crawl).
    """
    from sitetune.errors import InputError

    if file is not None:
        if site is None and file.sets("site", "corpus"):
            raise InputError("[site] corpus: a corpus file is never crawled: give START_URL, the site to re-crawl",
                             path=str(file.path))
        site = site or file.job.start
        store = store or file.store
    if site is None:
        raise InputError("give START_URL (the site to re-crawl), or --config FILE (a site configuration file)")
    if store is None:
        raise InputError("give --store STORE, or --config FILE (a site configuration file)")
    return site, store


def _crawl_defaults(site: str, file: SiteConfig | None) -> CrawlConfig:
    """The crawl settings before the flags: ``site``'s defaults, with what the file's ``[crawl]`` sets."""
    from sitetune.crawl import default_crawl_config

    defaults = default_crawl_config(site)
    if file is None:
        return defaults
    own = {f.name for f in dataclasses.fields(CrawlConfig)}
    return dataclasses.replace(defaults, **{k: v for k, v in file.values.get("crawl", {}).items() if k in own})


def refresh_schedule(store: str, every: str | None, site: str | None, extra: str | None,
                     file: SiteConfig | None = None) -> RefreshSchedule | None:
    """The schedule ``serve --refresh-every EVERY --refresh-site SITE [--refresh-args EXTRA]`` asks for.

    With a site configuration file (``serve --config FILE``), the file's ``[crawl] refresh_every`` and
    ``[site] start`` stand in for the first two flags, and the child reads the file too
    (``sitetune refresh --config FILE``); flags given win. The options are checked now, as
    ``sitetune refresh`` would read them, so a typo fails at startup and not at the first refresh a day later.

    Raises:
        InputError: A malformed duration, ``--refresh-site`` missing (or given without ``--refresh-every``),
            or ``--refresh-args`` that ``sitetune refresh`` would refuse.
    """
    import shlex
    import sys

    from sitetune.durations import parse_duration
    from sitetune.errors import InputError
    from sitetune.serve.refresher import RefreshSchedule

    scheduled = file.refresh_every_s if file is not None else None
    if every is None and scheduled is None:
        if site is not None or extra is not None:
            raise InputError("--refresh-site and --refresh-args need --refresh-every")
        return None
    seconds = parse_duration(every, name="--refresh-every") if every is not None else float(scheduled or 0)
    if site is None and file is not None:
        if file.sets("site", "corpus"):
            raise InputError("the refresh schedule needs --refresh-site: the file's [site] names a corpus file, "
                             "not a site to re-crawl", path=str(file.path))
        site = file.job.start
    if site is None:
        raise InputError("--refresh-every needs --refresh-site: the start URL or folder to re-crawl")
    own = ["--config", str(file.path.resolve())] if file is not None else []
    try:
        args = [site, "--store", store, *own, "--no-progress", *shlex.split(extra or "")]
    except ValueError as exc:
        raise InputError(f"--refresh-args: {exc}") from None
    probe = typer.Typer()
    register(probe)
    try:
        typer.main.get_command(probe).make_context("sitetune refresh", list(args))
    except typer.exceptions.TyperException as exc:  # typer's own click: the usage errors of `sitetune refresh`
        raise InputError(f"--refresh-args: {exc}") from None
    return RefreshSchedule(seconds, (sys.executable, "-m", "sitetune.cli.main", "refresh", *args), store)


def register(app: typer.Typer) -> None:
    """Add ``refresh`` to ``app``."""
    app.command("refresh")(refresh)
