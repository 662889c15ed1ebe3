"""Crawl a website into a corpus of section records, politely and within hard bounds.

Main entry points: :func:`crawl_site` (any http(s) site) and :func:`crawl_folder` (a folder of pages served
on 127.0.0.1 for the crawl, such as the bundled sample site from :func:`sample_site_dir`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from sitetune.config import ChunkingConfig, CrawlConfig
from sitetune.crawl.report import CrawlReport, PageResult, SkippedUrl
from sitetune.errors import InputError, SitetuneError

__all__ = [
    "FOLDER_CRAWL",
    "CrawlReport",
    "PageResult",
    "SkippedUrl",
    "crawl_folder",
    "crawl_site",
    "default_cache_dir",
    "default_report_path",
    "sample_site_dir",
]

_DEFAULT_CRAWL = CrawlConfig()
_DEFAULT_CHUNKING = ChunkingConfig()
FOLDER_CRAWL = dataclasses.replace(_DEFAULT_CRAWL, delay_s=0.0)
""":func:`crawl_folder`'s default config: no delay, since the only server it loads is its own on 127.0.0.1
(a mirror with a thousand dead links would otherwise spend minutes waiting on itself)."""


def default_report_path(out: Path) -> Path:
    """Where the crawl report goes by default: ``corpus.csv`` gives ``corpus.crawl.json``."""
    return Path(out).with_suffix(".crawl.json")


def default_cache_dir(out: Path) -> Path:
    """Where the page cache lives by default: ``corpus.csv`` gives the folder ``corpus.cache``."""
    return Path(out).with_suffix(".cache")


def sample_site_dir() -> Path:
    """The bundled sample site (a fictional business school's graduate admission pages)."""
    from importlib.resources import files

    return Path(str(files("sitetune.data").joinpath("sample_site")))


def crawl_site(start_url: str, out: Path, *, prefix: str | None = None, config: CrawlConfig = _DEFAULT_CRAWL,
               cache_dir: Path | None = None, progress: bool = True, report_path: Path | None = None,
               chunking: ChunkingConfig = _DEFAULT_CHUNKING, public_base: str | None = None) -> CrawlReport:
    """Crawl ``start_url`` and write the sectionized pages to ``out`` plus a JSON report beside it.

    Use it to build a corpus from a live site. Links are followed within ``prefix``; robots.txt is
    honoured; every skipped URL is in the report with its reason. A re-run with the same cache sends
    conditional requests, so only pages that changed are downloaded again.

    Args:
        start_url: An http(s) URL.
        out: Corpus file; ``.csv``, ``.jsonl`` or ``.parquet`` picks the format. Written atomically.
        prefix: Only URLs starting with this are crawled; default: the start URL's folder.
        config: Limits and politeness (pages, delay, concurrency, timeouts, sizes, traps).
        cache_dir: Page cache folder; default :func:`default_cache_dir` of ``out``.
        progress: Show a progress bar on stderr.
        report_path: Where to write the report; default :func:`default_report_path` of ``out``.
        chunking: Sectionizer settings.
        public_base: Replace the start URL's origin with this in records, report and cache keys.

    Returns:
        The report (also written to ``report_path``), with ``corpus`` and ``records`` filled in.

    Raises:
        InputError: ``start_url`` or ``prefix`` is not a usable http(s) URL, or ``out`` has an unknown
            extension.
        SitetuneError: No page yielded any text (the report is still written and names the reasons).
    """
    from sitetune.crawl.cache import PageCache
    from sitetune.crawl.crawler import Crawl
    from sitetune.crawl.urls import default_prefix, in_prefix, normalize_url
    from sitetune.recordio import format_of, write_records

    out = Path(out)
    format_of(out)
    start = normalize_url(start_url)
    if start is None or not start_url.strip().lower().startswith(("http://", "https://")):
        raise InputError("not a valid http(s) URL", path=start_url)
    scope = normalize_url(prefix) if prefix else default_prefix(start)
    if scope is None:
        raise InputError("--prefix is not a valid http(s) URL", path=prefix)
    if not in_prefix(start, scope):
        raise InputError(f"the start URL is outside the prefix {scope}", path=start_url)
    if public_base is not None and normalize_url(public_base) is None:
        raise InputError("public base is not a valid http(s) URL", path=public_base)
    crawl = Crawl(start, scope, config, PageCache(cache_dir or default_cache_dir(out)), chunking,
                  public_base=public_base, progress=progress)
    report = asyncio.run(crawl.run())
    records = crawl.records()
    report_file = report_path or default_report_path(out)
    if not records:
        report.write(report_file)
        reasons = ", ".join(f"{k} x{v}" for k, v in report.skip_reasons().items()) or "nothing found"
        first = f"; first: {report.skipped[0].url}: {report.skipped[0].detail}" if report.skipped else ""
        raise SitetuneError(f"no page of {start_url} yielded any text ({reasons}{first}); see {report_file}")
    report.records = write_records(records, out)
    report.corpus = str(out)
    report.write(report_file)
    return report


def crawl_folder(folder: Path, out: Path, *, start_path: str = "/", **kwargs: object) -> CrawlReport:
    """Serve ``folder`` on 127.0.0.1 (see :mod:`sitetune.crawl.localsite`) and crawl it.

    Records carry a public base URL instead of the ephemeral ``http://127.0.0.1:PORT``: ``public_base``
    when given, else the folder's ``_site.json`` ``public_base``. With one, the corpus is the same on every
    run, its citations link to the real site, and a warm cache is reused across runs. Without either,
    records carry the served address.

    Args:
        folder: A site folder (``index.html`` at its root).
        out: Corpus file.
        start_path: Path of the first page on the served site.
        **kwargs: Passed on to :func:`crawl_site` (``config``, ``cache_dir``, ``progress``,
            ``public_base``, ...). ``config`` defaults to :data:`FOLDER_CRAWL` (no delay between requests).

    Raises:
        InputError: ``folder`` is not a directory, its ``_site.json`` is malformed, or ``public_base`` is
            not an http(s) URL.
    """
    from sitetune.crawl.localsite import load_site_spec, serve_site

    spec = load_site_spec(Path(folder))
    if kwargs.get("public_base") is None:
        kwargs["public_base"] = spec.public_base
    kwargs.setdefault("config", FOLDER_CRAWL)
    with serve_site(Path(folder)) as base:
        return crawl_site(base + start_path, out, **kwargs)  # type: ignore[arg-type]
