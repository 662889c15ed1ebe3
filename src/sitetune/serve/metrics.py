"""Prometheus metrics of a running server, served at ``GET /metrics`` in the text format.

Every name starts with ``sitetune_``:

- ``sitetune_requests_total{method, endpoint, status}`` and ``sitetune_request_duration_seconds{...}``
  (histogram): every HTTP request, by route template (``/search``, ``/static/{path}``; ``unmatched`` for a
  path no route matched), so neither paths nor queries can grow the label set; methods other than the
  usual seven count as ``OTHER``.
- ``sitetune_answers_total{mode}`` and ``sitetune_answers_not_found_total{mode}``: ``POST /answer``
  results; their ratio is the "not found" rate.
- ``sitetune_llm_call_duration_seconds{outcome}`` (histogram, ``ok`` or ``error``) and
  ``sitetune_llm_errors_total{reason}`` (``call_failed``; ``breaker_open`` where the circuit breaker kept the
  endpoint from being called): generative answers, measured around the call.
- ``sitetune_store_chunks``, ``sitetune_store_generation`` and ``sitetune_generation_age_seconds`` (seconds
  since the served generation was written): read from the served store at each scrape, through
  :attr:`ServeMetrics.store_source`, so they follow a store that is switched live.
- ``sitetune_refresh_total{outcome}``, ``sitetune_refresh_duration_seconds{outcome}`` and
  ``sitetune_refresh_last_success_timestamp_seconds``: recorded by :meth:`ServeMetrics.record_refresh` (or
  :meth:`ServeMetrics.refresh_timer`), the API a scheduled refresh running in the server reports through.
- ``sitetune_process_*``: CPU, memory and open files of the process (one process only; see below).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the global one), so several apps
in one process (tests) count apart. With ``serve --workers N`` the supervisor makes a temporary directory,
names it in ``PROMETHEUS_MULTIPROC_DIR`` before the workers start (prometheus-client reads it when it is
first imported) and removes it on exit: each worker writes its counters and histograms to files there and
whichever worker answers a scrape sums them all, so one scrape sees every worker. The store gauges are
the answering worker's (every worker serves the same store; during a switch they may differ for a moment),
and per-process metrics are left out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from sitetune.config import ServeConfig

#: prometheus-client's variable naming the directory of the workers' metric files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The ``Content-Type`` of ``GET /metrics`` (Prometheus text format 0.0.4, which every scraper reads).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: The endpoint label of a request no route matched (a 404, or one refused before routing).
UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Request latency buckets (seconds): searches take milliseconds, generative answers seconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
REFRESH_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)


@dataclass(frozen=True)
class StoreStats:
    """What the store gauges show.

    Attributes:
        chunks: Sections (chunks) in the served generation.
        generation: Its number, or ``None`` where the store has none.
        committed: When it was written (Unix seconds), or ``None`` if unknown.
    """

    chunks: int
    generation: int | None = None
    committed: float | None = None


#: Returns the served store's stats at scrape time (``None``: no gauges).
StoreSource = Callable[[], StoreStats | None]


def manifest_stats(manifest: Any) -> StoreStats:
    """The stats of a generation from its manifest (:class:`sitetune.index.store.Manifest`)."""
    return StoreStats(
        chunks=int(manifest.count),
        generation=getattr(manifest, "generation", None),
        committed=getattr(manifest, "created_seconds", None),
    )


def searcher_store_source(searcher: Any) -> StoreSource:
    """A store source reading ``searcher.reader.manifest`` at each call, so it follows a swapped reader."""

    def source() -> StoreStats | None:
        manifest = getattr(getattr(searcher, "reader", None), "manifest", None)
        return None if manifest is None else manifest_stats(manifest)

    return source


class _StoreCollector:
    """The store gauges, computed when scraped (a gauge set once would not follow a reload or age)."""

    def __init__(self, metrics: ServeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        """Yield the gauges of the store the current source reports (none when it reports nothing)."""
        source = self.metrics.store_source
        stats = source() if source is not None else None
        if stats is None:
            return
        chunks = GaugeMetricFamily("sitetune_store_chunks", "Sections (chunks) in the served store generation")
        chunks.add_metric([], stats.chunks)
        yield chunks
        if stats.generation is not None:
            generation = GaugeMetricFamily("sitetune_store_generation", "Number of the served store generation")
            generation.add_metric([], stats.generation)
            yield generation
        if stats.committed is not None:
            age = GaugeMetricFamily(
                "sitetune_generation_age_seconds", "Seconds since the served store generation was written"
            )
            age.add_metric([], max(0.0, self.metrics.clock() - stats.committed))
            yield age


def multiprocess_directory() -> str | None:
    """The directory of the workers' metric files, if prometheus-client keeps this process's values there."""
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:  # chosen when prometheus-client was imported
        return None
    return os.environ.get(MULTIPROC_ENV) or None


def monitoring_line(config: ServeConfig) -> str:
    """The line ``serve`` prints after its URL: where health and (if served) metrics are."""
    shown = f"[{config.host}]" if ":" in config.host else config.host
    base = f"http://{shown}:{config.port}"
    metrics = f", metrics {base}/metrics" if config.metrics else ""
    return f"health {base}/healthz{metrics}"


class ServeMetrics:
    """The metrics of one app, and how its parts record into them.

    Args:
        store_source: Reads the served store's stats at scrape time; see :attr:`store_source`.
        clock: Unix seconds (for the generation's age).

    Attributes:
        registry: This app's registry; :meth:`exposition` renders it.
        multiprocess_dir: The directory of every process's metric files (``serve --workers N``), or ``None``
            in a single process. Set when prometheus-client was first imported with ``$PROMETHEUS_MULTIPROC_DIR``
            set, as that is when it chose to keep values in files.
        store_source: Called at each scrape. Code that switches the served store replaces it (or keeps the
            default, which reads whatever reader the searcher holds at the time); ``None`` shows no store gauges.
    """

    def __init__(
        self,
        store_source: StoreSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.multiprocess_dir = multiprocess_directory()
        self.store_source = store_source
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        # In multi-process mode the values live in files: the metrics register nowhere and the registry
        # reads every process's files instead (a metric registered too would be counted twice).
        own = None if self.multiprocess_dir else self.registry
        self.requests = Counter(
            "sitetune_requests_total", "HTTP requests by method, route template and status",
            ["method", "endpoint", "status"], registry=own,
        )
        self.request_seconds = Histogram(
            "sitetune_request_duration_seconds", "HTTP request latency by method, route template and status",
            ["method", "endpoint", "status"], buckets=REQUEST_BUCKETS, registry=own,
        )
        self.answers = Counter("sitetune_answers_total", "Answers given by POST /answer", ["mode"], registry=own)
        self.not_found = Counter(
            "sitetune_answers_not_found_total", "Answers that found nothing in the pages", ["mode"], registry=own
        )
        self.llm_seconds = Histogram(
            "sitetune_llm_call_duration_seconds", "LLM endpoint calls for generative answers, by outcome",
            ["outcome"], buckets=LLM_BUCKETS, registry=own,
        )
        self.llm_errors = Counter(
            "sitetune_llm_errors_total",
            "Generative answers that fell back to extractive: the call failed, or the circuit breaker was open",
            ["reason"], registry=own,
        )
        self.refreshes = Counter(
            "sitetune_refresh_total", "Store refreshes by outcome (success, failure)", ["outcome"], registry=own
        )
        self.refresh_seconds = Histogram(
            "sitetune_refresh_duration_seconds", "Store refresh duration by outcome",
            ["outcome"], buckets=REFRESH_BUCKETS, registry=own,
        )
        self.refresh_last_success = Gauge(
            "sitetune_refresh_last_success_timestamp_seconds", "When the last successful refresh finished",
            registry=own, multiprocess_mode="max",
        )
        if self.multiprocess_dir:
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            ProcessCollector(namespace="sitetune", registry=self.registry)
        self.registry.register(_StoreCollector(self))

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency (``endpoint``: the route template, never the raw path)."""
        method = method if method in KNOWN_METHODS else "OTHER"
        labels = (method, endpoint, str(status))
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def count_answer(self, mode: str, found: bool) -> None:
        """Count one answer of ``POST /answer`` (``mode``: extractive or llm)."""
        self.answers.labels(mode).inc()
        if not found:
            self.not_found.labels(mode).inc()

    def observe_llm_call(self, seconds: float, *, failed: bool) -> None:
        """Record one call to the LLM endpoint: its latency, and an error if it failed."""
        self.llm_seconds.labels("error" if failed else "ok").observe(seconds)
        if failed:
            self.llm_errors.labels("call_failed").inc()

    def count_llm_skipped(self) -> None:
        """Count a generative answer the circuit breaker kept from calling the endpoint."""
        self.llm_errors.labels("breaker_open").inc()

    def record_refresh(self, seconds: float, *, succeeded: bool) -> None:
        """Record one store refresh (re-crawl and re-index): its outcome and how long it took.

        A scheduled refresh run by the server calls this (or :meth:`refresh_timer`) once per run.
        """
        outcome = "success" if succeeded else "failure"
        self.refreshes.labels(outcome).inc()
        self.refresh_seconds.labels(outcome).observe(seconds)
        if succeeded:
            self.refresh_last_success.set(self.clock())

    @contextmanager
    def refresh_timer(self) -> Iterator[None]:
        """Time the block as one refresh: a success if it returns, a failure if it raises (re-raised)."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.record_refresh(time.perf_counter() - start, succeeded=False)
            raise
        self.record_refresh(time.perf_counter() - start, succeeded=True)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
