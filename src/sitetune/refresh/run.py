"""One refresh: re-crawl, rebuild the corpus, re-index with the current model, and record how it went."""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitetune.config import DEFAULT_BM25_FIELDS, CrawlConfig, EncoderConfig, TrainConfig
from sitetune.errors import InputError, SitetuneError
from sitetune.index.refreshstate import mark_running, record_attempt, refresh_lock, state_dir
from sitetune.index.stream import DEFAULT_CHECKPOINT_ROWS
from sitetune.refresh.drift import Drift, measure, reset
from sitetune.refresh.pages import PageChanges, merge_pages

#: Default share of sections changed since training above which the model is reported stale.
DEFAULT_STALE_THRESHOLD = 0.2


class RefreshError(SitetuneError):
    """A refresh that failed; the served store was left as it was.

    Attributes:
        stage: Where it failed: "crawl", "corpus", "drift", "train" or "index".
    """

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class RefreshOptions:
    """What a refresh does.

    Attributes:
        site: An http(s) start URL, a site folder (served on 127.0.0.1 for the crawl) or ``"sample"``.
        store: The store to re-index (a directory or a Milvus URI).
        corpus: The corpus file to rewrite; default: the one the served generation was built from.
        default_corpus: The corpus file when neither ``corpus`` nor the store names one (an empty store).
        model: The model to index with; default: the one the served generation was built with (``"base"``
            for an empty store).
        prefix: Only URLs under it are crawled (URLs only).
        crawl: Crawl limits; default: :func:`sitetune.crawl.default_crawl_config` of ``site`` with sitemaps.
        cache_dir: The page cache (default: beside the corpus, ``CORPUS.cache``, as ``sitetune crawl``'s).
        public_base: Base URL the records carry instead of the crawled origin.
        encoder: Encoder settings for indexing.
        checkpoint_rows: Batch size of the resumable index build.
        stale_threshold: Share of sections changed since training above which the model is stale.
        retrain_threshold: Retrain when the share is above this; ``None`` (default): never.
        retrain_out: Where a retrained model goes (default: beside the current one, with the time appended).
        train: The training recipe for a retrain (default: the retrieval recipe ``sitetune run`` uses).
        progress: Progress bars on stderr.
    """

    site: str
    store: str
    corpus: Path | None = None
    default_corpus: Path | None = None
    model: str | None = None
    prefix: str | None = None
    crawl: CrawlConfig | None = None
    cache_dir: Path | None = None
    public_base: str | None = None
    encoder: EncoderConfig | None = None
    checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS
    stale_threshold: float = DEFAULT_STALE_THRESHOLD
    retrain_threshold: float | None = None
    retrain_out: Path | None = None
    train: TrainConfig | None = None
    progress: bool = True


@dataclass
class RefreshReport:
    """What a refresh did (``sitetune refresh --json`` prints it).

    Attributes:
        store: The store.
        corpus: The corpus file rewritten.
        model: The model the store is indexed with now.
        generation: The generation served after the refresh.
        previous_generation: The one served before (``None``: the store was empty).
        published: Whether a new generation was written (False when nothing changed).
        pages: Pages in the corpus.
        fetched: Pages downloaded in full.
        unchanged_on_server: Pages the server (304) or the sitemap's ``<lastmod>`` said were unchanged.
        new, changed, unchanged, gone, kept: Pages against the previous corpus (see
            :class:`~sitetune.refresh.pages.PageChanges`).
        sections: Unique sections indexed.
        embedded: Sections embedded by this refresh (new or changed text); the rest reused their vectors.
        removed: Sections of the previous generation no longer in the corpus.
        retrained: Whether the model was retrained.
        drift: Share of sections changed since the model was trained, its threshold and whether it is stale.
        sitemaps: Each sitemap read and what came of it.
        seconds: Wall time.
        stages: Seconds per stage.
    """

    store: str
    corpus: str
    model: str
    generation: int | None
    previous_generation: int | None
    published: bool
    pages: int
    fetched: int
    unchanged_on_server: int
    new: int
    changed: int
    unchanged: int
    gone: int
    kept: int
    sections: int
    embedded: int
    removed: int
    retrained: bool
    drift: dict[str, object] | None
    sitemaps: dict[str, str]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_refresh(options: RefreshOptions, *, log: Callable[[str], object] = _stderr) -> RefreshReport:
    """Re-crawl ``options.site`` and bring ``options.store`` up to date, or fail leaving it as it was.

    Steps: crawl (conditional requests from the page cache; sitemaps for URLs and ``<lastmod>``), rebuild
    the corpus (pages the crawl could not fetch this time keep their sections), measure how far it moved
    from the model's training corpus, retrain only when asked to and past ``retrain_threshold``, and index
    with the model: only new or changed sections are embedded, and nothing is written when the corpus is
    the one served. A running ``sitetune serve`` switches to the new generation by itself.

    Every attempt, success or failure, is recorded in the store's ``refresh.json``
    (:mod:`sitetune.index.refreshstate`), which ``/healthz`` and ``/metrics`` of a running server report.

    Raises:
        RefreshError: Any step failed (the message names it); the served generation is unchanged.
        StoreError: Another refresh of the store is running.
    """
    folder = state_dir(options.store)
    began, started = time.perf_counter(), _now()
    with refresh_lock(folder):
        run = mark_running(folder, started)
        stage = ["start"]
        stages: dict[str, float] = {}
        try:
            report, drift = _refresh(options, folder, log, stage, stages)
        except BaseException as exc:
            seconds = round(time.perf_counter() - began, 3)
            detail = str(exc) if isinstance(exc, SitetuneError) else f"{type(exc).__name__}: {exc}"
            error = f"refresh failed while {_DOING[stage[0]]}: {detail}"
            record_attempt(folder, {"run": run, "started": started, "finished": _now(), "seconds": seconds,
                                    "outcome": "failure", "stage": stage[0], "error": error})
            log(f"refresh: {error} (the served store is unchanged)")
            if isinstance(exc, Exception):
                raise RefreshError(f"{error} (the served store is unchanged)", stage[0]) from exc
            raise
        report.seconds = round(time.perf_counter() - began, 3)
        report.stages = stages
        summary = {k: v for k, v in dataclasses.asdict(report).items() if k not in ("sitemaps", "drift", "stages")}
        record_attempt(folder, {"run": run, "started": started, "finished": _now(), "outcome": "success",
                                "stage": "done", "error": None, **summary},
                       drift.to_dict() if drift is not None else None)
    return report


_DOING = {"start": "starting", "crawl": "crawling", "corpus": "writing the corpus", "drift": "measuring drift",
          "train": "retraining", "index": "indexing"}


def _refresh(options: RefreshOptions, folder: Path, log: Callable[[str], object], stage: list[str],
             stages: dict[str, float]) -> tuple[RefreshReport, Drift | None]:
    from sitetune.corpus import Corpus
    from sitetune.crawl import crawl_source, default_cache_dir, default_crawl_config, default_report_path
    from sitetune.index import build_index
    from sitetune.index.identity import corpus_hash, model_fingerprint
    from sitetune.index.store import EmbeddedStore
    from sitetune.models import resolve_model_path
    from sitetune.recordio import read_records, write_records

    pointer = EmbeddedStore(folder)
    previous = pointer.current()
    manifest = pointer.read_manifest(previous) if previous is not None else None
    corpus_text = str(options.corpus) if options.corpus is not None else (manifest.corpus_path if manifest else "")
    if not corpus_text and options.default_corpus is not None:
        corpus_text = str(options.default_corpus)
    if not corpus_text:
        raise InputError("the store names no corpus file to refresh: give one with --corpus", path=options.store)
    corpus_path = Path(corpus_text)
    model = options.model or (manifest.model_path if manifest is not None else "base")

    def begin(name: str) -> float:
        stage[0] = name
        return time.perf_counter()

    clock = begin("crawl")
    config = options.crawl or dataclasses.replace(default_crawl_config(options.site), sitemaps=True)
    log(f"refresh: crawling {options.site} (cache {options.cache_dir or default_cache_dir(corpus_path)})")
    crawled, crawl = crawl_source(options.site, None, prefix=options.prefix, config=config,
                                  cache_dir=options.cache_dir or default_cache_dir(corpus_path),
                                  progress=options.progress, public_base=options.public_base)
    stages["crawl"] = round(time.perf_counter() - clock, 3)
    log(f"refresh: {len(crawl.pages)} pages crawled: {crawl.fetched} downloaded, {crawl.not_modified} unchanged "
        f"on the server ({crawl.sitemap_unchanged} by sitemap lastmod), {crawl.skipped_total} URLs skipped "
        f"({crawl.dead_not_rechecked} known dead links not re-checked)")

    clock = begin("corpus")
    before = read_records(corpus_path) if corpus_path.is_file() else []
    records, changes = merge_pages(before, crawled.records, crawl.transient)
    crawl.records = write_records(records, corpus_path)
    crawl.corpus = str(corpus_path)
    crawl.write(default_report_path(corpus_path))
    corpus = Corpus.from_records(records, source=str(corpus_path))
    stages["corpus"] = round(time.perf_counter() - clock, 3)
    log(_describe(changes, corpus_path))

    clock = begin("drift")
    fingerprint = model_fingerprint(resolve_model_path(model))
    ids = [c.chunk_id for c in corpus.chunks]
    drift = measure(folder, fingerprint, ids, generation=previous,
                    generation_fingerprint=manifest.model_fingerprint if manifest else None,
                    threshold=options.stale_threshold)
    stages["drift"] = round(time.perf_counter() - clock, 3)
    if drift.stale:
        log(f"refresh: the model is stale: {drift.changed:.0%} of sections changed since it was trained "
            f"(threshold {drift.threshold:.0%}; baseline: {drift.baseline})")

    retrained = False
    if options.retrain_threshold is not None and drift.changed > options.retrain_threshold:
        clock = begin("train")
        model = str(_retrain(options, model, corpus_path, log, drift))
        fingerprint = model_fingerprint(resolve_model_path(model))
        reset(folder, fingerprint, ids, source=f"retrained by a refresh on {corpus_path}")
        drift = Drift(0.0, drift.threshold, False, f"retrained by a refresh on {corpus_path}")
        retrained = True
        stages["train"] = round(time.perf_counter() - clock, 3)

    clock = begin("index")
    same = (manifest is not None and manifest.model_fingerprint == fingerprint
            and manifest.corpus_hash == corpus_hash(corpus.chunks))
    if same:
        assert previous is not None
        log(f"refresh: no section changed: generation {previous} stays served")
        generation, published, embedded, removed = previous, False, 0, 0
    else:
        log(f"refresh: indexing {len(corpus.chunks)} sections into {options.store} with {model}")
        index = build_index(corpus_path, model, options.store, options.encoder, progress=options.progress,
                            bm25_fields=manifest.bm25_fields if manifest else DEFAULT_BM25_FIELDS,
                            checkpoint_rows=options.checkpoint_rows)
        generation, published, embedded, removed = index.generation, True, index.embedded, index.removed
        log(f"refresh: generation {generation} published: {embedded} sections embedded, "
            f"{index.reused} reused, {removed} removed")
    stages["index"] = round(time.perf_counter() - clock, 3)
    report = RefreshReport(
        store=options.store, corpus=str(corpus_path), model=model, generation=generation,
        previous_generation=previous, published=published, pages=len(corpus.pages), fetched=crawl.fetched,
        unchanged_on_server=crawl.not_modified, new=changes.new, changed=changes.changed,
        unchanged=changes.unchanged, gone=changes.gone, kept=changes.kept, sections=len(corpus.chunks),
        embedded=embedded, removed=removed, retrained=retrained, drift=drift.to_dict(),
        sitemaps=crawl.sitemaps, seconds=0.0,
    )
    return report, drift


def _describe(changes: PageChanges, corpus: Path) -> str:
    kept = f", {changes.kept} kept from the last corpus (not fetched this time)" if changes.kept else ""
    return (f"refresh: corpus {corpus}: {changes.new} new pages, {changes.changed} changed, "
            f"{changes.unchanged} unchanged, {changes.gone} gone{kept}")


def _retrain(options: RefreshOptions, model: str, corpus: Path, log: Callable[[str], object], drift: Drift) -> Path:
    """Train the recipe on ``corpus`` into a new folder (the current model stays, for the served store)."""
    from sitetune.config import RETRIEVAL_RECIPE
    from sitetune.train import train

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    name = "base-model" if model == "base" else Path(model).name
    out = options.retrain_out or (Path(model).parent if model != "base" else corpus.parent) / f"{name}-{stamp}"
    log(f"refresh: retraining ({drift.changed:.0%} of sections changed since training, above the retrain "
        f"threshold {options.retrain_threshold:.0%}) -> {out}")
    train(options.train or RETRIEVAL_RECIPE, out=out, corpus=corpus, progress=options.progress,
          log=lambda line: log(f"refresh:   {line}"))
    return out


def summary(report: RefreshReport) -> dict[str, Any]:
    """``report`` as a JSON-ready dict."""
    return dataclasses.asdict(report)
