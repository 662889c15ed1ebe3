"""Crawl a website into a corpus of section records, politely and within hard bounds.

Main entry points: :func:`crawl_source` (a URL, a folder or the sample site, to a corpus in memory and
optionally a file), :func:`crawl_site` (any http(s) site, to a file) and :func:`crawl_folder` (a folder of
pages served on 127.0.0.1 for the crawl, such as the bundled sample site from :func:`sample_site_dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.config import ChunkingConfig, CrawlConfig
from sitetune.crawl.page import sectionize_source
from sitetune.crawl.report import CrawlReport, PageResult, SkippedUrl
from sitetune.errors import InputError, SitetuneError
from sitetune.records import SectionRecord

if TYPE_CHECKING:
    from sitetune.corpus import Corpus

__all__ = [
    "FOLDER_CRAWL",
    "SAMPLE_SITE",
    "CrawlReport",
    "PageResult",
    "SkippedUrl",
    "crawl_folder",
    "crawl_site",
    "crawl_source",
    "default_cache_dir",
    "default_crawl_config",
    "default_report_path",
    "sample_site_dir",
    "sectionize_source",
    "site_folder",
]

_DEFAULT_CRAWL = CrawlConfig()
_DEFAULT_CHUNKING = ChunkingConfig()
FOLDER_CRAWL = dataclasses.replace(_DEFAULT_CRAWL, delay_s=0.0)
""":func:`crawl_folder`'s default config: no delay, since the only server it loads is its own on 127.0.0.1
(a mirror with a thousand dead links would otherwise spend minutes waiting on itself)."""

SAMPLE_SITE = "sample"
"""The source name of the bundled sample site (see :func:`sample_site_dir`)."""


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


def crawl_site(start_url: str, out: Path | None = None, *, prefix: str | None = None,
               config: CrawlConfig = _DEFAULT_CRAWL, cache_dir: Path | None = None, progress: bool = True,
               report_path: Path | None = None, chunking: ChunkingConfig = _DEFAULT_CHUNKING,
               public_base: str | None = None) -> CrawlReport:
    """Crawl ``start_url`` and write the sectionized pages to ``out`` plus a JSON report beside it.

    Use it to build a corpus file from a live site (:func:`crawl_source` gives the corpus in memory).
    Links are followed within ``prefix``; robots.txt is honoured; every skipped URL is in the report with
    its reason. A re-run with the same cache sends conditional requests, so only pages that changed are
    downloaded again.

    Args:
        start_url: An http(s) URL.
        out: Corpus file; ``.csv``, ``.jsonl`` or ``.parquet`` picks the format. Written atomically.
            ``None`` writes no corpus (and no report unless ``report_path`` is given).
        prefix: Only URLs starting with this are crawled; default: the start URL's folder.
        config: Limits and politeness (pages, delay, concurrency, timeouts, sizes, traps).
        cache_dir: Page cache folder; default :func:`default_cache_dir` of ``out`` (a temporary folder
            when ``out`` is ``None``).
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
    return _crawl(start_url, out, prefix=prefix, config=config, cache_dir=cache_dir, progress=progress,
                  report_path=report_path, chunking=chunking, public_base=public_base)[1]


def _crawl(start_url: str, out: Path | None, *, prefix: str | None, config: CrawlConfig,
           cache_dir: Path | None, progress: bool, report_path: Path | None, chunking: ChunkingConfig,
           public_base: str | None) -> tuple[list[SectionRecord], CrawlReport]:
    """:func:`crawl_site`, returning the records as well as the report."""
    from sitetune.crawl.cache import PageCache
    from sitetune.crawl.crawler import Crawl
    from sitetune.crawl.urls import default_prefix, in_prefix, normalize_url
    from sitetune.recordio import format_of, write_records

    if out is not None:
        out = Path(out)
        format_of(out)
    start = normalize_url(start_url)
    if start is None or not start_url.strip().lower().startswith(("http://", "https://")):
        raise InputError("not a valid http(s) URL", path=start_url)
    scope = normalize_url(prefix) if prefix else default_prefix(start)
    if scope is None:
        raise InputError("`prefix` is not a valid http(s) URL", path=prefix)
    if not in_prefix(start, scope):
        raise InputError(f"the start URL is outside the prefix {scope}", path=start_url)
    if public_base is not None and normalize_url(public_base) is None:
        raise InputError("public base is not a valid http(s) URL", path=public_base)
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = (default_cache_dir(out) if out is not None
                         else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sitetune-cache-"))))
        crawl = Crawl(start, scope, config, PageCache(cache_dir), chunking, public_base=public_base,
                      progress=progress)
        report = asyncio.run(crawl.run())
    records = crawl.records()
    report_file = report_path or (default_report_path(out) if out is not None else None)
    if not records:
        if report_file is not None:
            report.write(report_file)
        reasons = ", ".join(f"{k} x{v}" for k, v in report.skip_reasons().items()) or "nothing found"
        first = f"; first: {report.skipped[0].url}: {report.skipped[0].detail}" if report.skipped else ""
        where = f"; see {report_file}" if report_file is not None else ""
        raise SitetuneError(f"no page of {start_url} yielded any text ({reasons}{first}){where}")
    if out is not None:
        report.records = write_records(records, out)
        report.corpus = str(out)
    else:
        report.records = len(records)
    if report_file is not None:
        report.write(report_file)
    return records, report


def crawl_folder(folder: Path, out: Path | None = None, *, start_path: str = "/",
                 **kwargs: object) -> CrawlReport:
    """Serve ``folder`` on 127.0.0.1 (see :mod:`sitetune.crawl.localsite`) and crawl it.

    Records carry a public base URL instead of the ephemeral ``http://127.0.0.1:PORT``: ``public_base``
    when given, else the folder's ``_site.json`` ``public_base``. With one, the corpus is the same on every
    run, its citations link to the real site, and a warm cache is reused across runs. Without either,
    records carry the served address.

    Args:
        folder: A site folder (``index.html`` at its root).
        out: Corpus file (``None``: none written).
        start_path: Path of the first page on the served site.
        **kwargs: Passed on to :func:`crawl_site` (``config``, ``cache_dir``, ``progress``,
            ``public_base``, ...). ``config`` defaults to :data:`FOLDER_CRAWL` (no delay between requests).

    Returns:
        The crawl report.

    Raises:
        InputError: ``folder`` is not a directory, its ``_site.json`` is malformed, or ``public_base`` is
            not an http(s) URL.
    """
    return _crawl_folder(Path(folder), out, start_path=start_path, **kwargs)[1]


def _crawl_folder(folder: Path, out: Path | None, *, start_path: str = "/",
                  **kwargs: object) -> tuple[list[SectionRecord], CrawlReport]:
    from sitetune.crawl.localsite import load_site_spec, serve_site

    spec = load_site_spec(folder)
    options: dict[str, object] = {"prefix": None, "config": FOLDER_CRAWL, "cache_dir": None, "progress": True,
                                  "report_path": None, "chunking": _DEFAULT_CHUNKING, "public_base": None}
    unknown = set(kwargs) - set(options)
    if unknown:
        raise TypeError(f"unknown crawl option(s): {', '.join(sorted(unknown))}")
    options.update(kwargs)
    if options["public_base"] is None:
        options["public_base"] = spec.public_base
    with serve_site(folder) as base:
        return _crawl(base + start_path, out, **options)  # type: ignore[arg-type]


def site_folder(source: str | Path) -> Path | None:
    """The folder ``source`` names (``"sample"``: the bundled sample site), or ``None`` for a URL."""
    text = str(source)
    if text == SAMPLE_SITE:
        return sample_site_dir()
    folder = Path(source)
    return folder if "://" not in text and folder.is_dir() else None


def default_crawl_config(source: str | Path) -> CrawlConfig:
    """The crawl settings ``source`` gets by default.

    :data:`FOLDER_CRAWL` for a folder (served by our own server on 127.0.0.1), else the polite defaults of
    :class:`~sitetune.config.CrawlConfig` (politeness is for other people's servers).
    """
    return FOLDER_CRAWL if site_folder(source) is not None else _DEFAULT_CRAWL


def crawl_source(
    source: str | Path,
    out: Path | None = None,
    *,
    prefix: str | None = None,
    config: CrawlConfig | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    report_path: Path | None = None,
    chunking: ChunkingConfig = _DEFAULT_CHUNKING,
    public_base: str | None = None,
) -> tuple[Corpus, CrawlReport]:
    """Crawl a URL, a site folder or the bundled sample site into a corpus, optionally written to ``out``.

    Args:
        source: An http(s) start URL; a site folder (served on 127.0.0.1 for the crawl); or ``"sample"``.
        out: Corpus file to write (``.csv``, ``.jsonl`` or ``.parquet``); ``None`` keeps it in memory only.
        prefix: Only URLs under this prefix are crawled (URLs only; default: the start URL's folder).
        config: Limits and politeness; default :func:`default_crawl_config` of ``source``.
        cache_dir: Page cache folder (see :func:`crawl_site`).
        progress: Show a progress bar on stderr.
        report_path: Where to write the crawl report (see :func:`crawl_site`).
        chunking: Sectionizer settings.
        public_base: Base URL the records carry instead of the crawled origin.

    Returns:
        The corpus and the crawl report.

    Raises:
        InputError: ``source`` is neither an http(s) URL nor a folder, or ``prefix`` was given for a folder.
        SitetuneError: No page yielded any text.
    """
    from sitetune.corpus import Corpus

    folder = site_folder(source)
    settings = config or default_crawl_config(source)
    common: dict[str, object] = {"config": settings, "cache_dir": cache_dir, "progress": progress,
                                 "report_path": report_path, "chunking": chunking, "public_base": public_base}
    if folder is not None:
        if prefix is not None:
            raise InputError("`prefix` applies to URLs, not to a served folder", path=str(source))
        records, report = _crawl_folder(folder, out, **common)  # type: ignore[arg-type]
    else:
        records, report = _crawl(str(source), out, prefix=prefix, **common)  # type: ignore[arg-type]
    return Corpus.from_records(records, source=str(out) if out is not None else None), report
