"""``sitetune crawl`` and ``sitetune sectionize``: a site to a corpus, one page to records."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import (
    CrawlDeadLinkTtlOption,
    CrawlMaxBytesOption,
    CrawlMaxTimeOption,
    CrawlRetriesOption,
    CrawlTimeoutOption,
    handle_errors,
    print_json,
)
from sitetune.config import ChunkingConfig, CrawlConfig

_CRAWL = CrawlConfig()  # flag defaults come from the config, so the two cannot drift apart
_ALLOW_PRIVATE_HELP = ("Also fetch host names that resolve to loopback, private, link-local or metadata addresses "
                       "(an intranet site). A start URL that is such an address itself (http://127.0.0.1:8000/) "
                       "needs no flag. See docs/security.md")


@handle_errors
def crawl(
    start: Annotated[str, typer.Argument(
        help="http(s) start URL; or a site folder to serve on 127.0.0.1 and crawl; or 'sample' for the "
             "bundled sample site", metavar="START_URL")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Corpus file: .csv, .jsonl or .parquet")],
    prefix: Annotated[str | None, typer.Option(help="Only crawl URLs under this prefix (default: the start "
                                                    "URL's folder)")] = None,
    max_pages: Annotated[int, typer.Option(min=1, help="Stop after this many pages")] = _CRAWL.max_pages,
    delay: Annotated[float | None, typer.Option(min=0.0, help="Seconds between requests (default: "
                                                              f"{_CRAWL.delay_s:g} for a URL, 0 for a served folder; "
                                                              "robots.txt Crawl-delay wins if larger)")] = None,
    public_base: Annotated[str | None, typer.Option(
        "--public-base", help="Base URL the records carry instead of the crawled origin (default: a folder's "
                              "_site.json public_base, else the 127.0.0.1 address it is served on)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32,
                                             help="Requests in flight at once")] = _CRAWL.concurrency,
    timeout: CrawlTimeoutOption = _CRAWL.timeout_s,
    retries: CrawlRetriesOption = _CRAWL.retries,
    max_bytes: CrawlMaxBytesOption = _CRAWL.max_bytes,
    max_time: CrawlMaxTimeOption = _CRAWL.total_time_s,
    dead_link_ttl: CrawlDeadLinkTtlOption = _CRAWL.dead_link_ttl_s,
    cache: Annotated[Path | None, typer.Option(help="Page cache folder (default: beside the corpus, "
                                                    "CORPUS.cache)")] = None,
    report: Annotated[Path | None, typer.Option(help="Crawl report JSON (default: beside the corpus, "
                                                     "CORPUS.crawl.json)")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the crawl report as JSON")] = False,
    allow_private_addresses: Annotated[bool, typer.Option("--allow-private-addresses",
                                                          help=_ALLOW_PRIVATE_HELP)] = False,
    sitemaps: Annotated[bool, typer.Option(
        "--sitemaps/--no-sitemaps", help="Also crawl the URLs the site's sitemaps list (robots.txt Sitemap: "
                                         "lines, else /sitemap.xml), and trust their <lastmod> for cached pages "
                                         "(sitetune refresh reads them by default)")] = _CRAWL.sitemaps,
) -> None:
    """Crawl a site within a prefix and write its pages, sectionized, as a corpus plus a crawl report.

    Example: sitetune crawl https://www.example.edu/graduate/ --out runs/site.csv --max-pages 200
    Example: sitetune crawl sample --out runs/sample.csv
    Example: sitetune crawl ./mirror --out runs/mirror.jsonl --public-base https://www.example.edu/
    """
    from sitetune.crawl import crawl_source, default_crawl_config

    defaults = default_crawl_config(start)
    config = dataclasses.replace(defaults, max_pages=max_pages,
                                 delay_s=defaults.delay_s if delay is None else delay, concurrency=concurrency,
                                 timeout_s=timeout, retries=retries, max_bytes=max_bytes, total_time_s=max_time,
                                 allow_private_addresses=allow_private_addresses, sitemaps=sitemaps,
                                 dead_link_ttl_s=dead_link_ttl)
    _corpus, result = crawl_source(start, out, prefix=prefix, config=config, cache_dir=cache, progress=progress,
                                   report_path=report, public_base=public_base)
    if as_json:
        print_json(result.to_dict())
        return
    reasons = ", ".join(f"{k} {v}" for k, v in result.skip_reasons().items()) or "none"
    typer.echo(f"pages     {len(result.pages):>6}  ({result.fetched} downloaded, "
               f"{result.not_modified} unchanged from cache)")
    typer.echo(f"records   {result.records:>6}  -> {result.corpus}")
    listed = f"; the report lists {len(result.skipped)}" if result.skipped_truncated else ""
    if result.dead_not_rechecked:
        listed += f"; {result.dead_not_rechecked} dead links not re-checked"
    typer.echo(f"skipped   {result.skipped_total:>6}  ({reasons}{listed})")
    for url, note in result.sitemaps.items():
        typer.echo(f"sitemap   {url}: {note}")
    typer.echo(f"bytes     {result.wire_bytes:>6}  in {result.duration_s:.1f} s"
               + (f"  (stopped early: {result.stopped})" if result.stopped else ""))


@handle_errors
def sectionize(
    source: Annotated[str, typer.Argument(help="An HTML file or an http(s) URL", metavar="FILE_OR_URL")],
    max_tokens: Annotated[int, typer.Option(min=16, max=512, help="Longest chunk in tokens, special tokens "
                                                                  "included")] = ChunkingConfig.max_tokens,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as a JSON list")] = False,
    allow_private_addresses: Annotated[bool, typer.Option("--allow-private-addresses",
                                                          help=_ALLOW_PRIVATE_HELP)] = False,
) -> None:
    """Split one HTML page into section records (page name, section title and type, text, URL).

    A URL's redirects are followed on its own host and port only.

    Example: sitetune sectionize page.html --json
    """
    from sitetune.crawl import sectionize_source

    records = sectionize_source(source, dataclasses.replace(ChunkingConfig(), max_tokens=max_tokens),
                                allow_private_addresses=allow_private_addresses)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    typer.echo(f"{records[0].page_name}  ({records[0].url})")
    for r in records:
        preview = " ".join(r.text.split())
        typer.echo(f"  [{r.section_title}] {preview[:100]}{'...' if len(preview) > 100 else ''}")


def register(app: typer.Typer) -> None:
    """Add ``crawl`` and ``sectionize`` to ``app``."""
    app.command("crawl")(crawl)
    app.command("sectionize")(sectionize)
