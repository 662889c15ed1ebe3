"""``GET /metrics`` and ``--log-format json`` on real servers: counters move, lines parse, request ids match.

One ``sitetune serve --log-format json`` process is shared by most tests (module fixture); an in-process app
covers what needs its own settings (no metrics, an LLM that cannot be reached, an unhandled error), and one
``--workers 2`` process shows that a scrape sees every worker's counts.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve_helpers import free_port, live_server, session_store, start_serve, stop, wait_healthy
from sitetune.answer import LLMConfig
from sitetune.config import ServeConfig
from sitetune.serve import create_app

ANSWERABLE = "When is the application deadline?"
UNANSWERABLE = "What is the capital of Peru?"


def scrape(url: str, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` parsed with Prometheus's own text parser: (sample name, sorted labels) -> value."""
    response = httpx.get(f"{url}/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter appears on its first increment)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Served:
    url: str
    log: Path
    store: Path
    query_log: Path


@pytest.fixture(scope="module")
def served(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = session_store(cbs_csv, tmp_path_factory)
    folder = tmp_path_factory.mktemp("metrics-serve")
    port, log, query_log = free_port(), folder / "serve.log", folder / "queries.jsonl"
    process = start_serve(store, port, log, "--no-warm", "--log-format", "json", "--query-log", str(query_log))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield Served(url, log, store, query_log)
    finally:
        stop(process)


def test_requests_are_counted_by_route_template_and_status(served: Served) -> None:
    url = served.url
    before = scrape(url)
    assert httpx.get(f"{url}/search", params={"q": "deadline", "k": 2}, timeout=30).status_code == 200
    assert httpx.get(f"{url}/search", params={"q": ""}, timeout=30).status_code == 422
    assert httpx.get(f"{url}/no/such/page-4711", timeout=30).status_code == 404
    assert httpx.get(f"{url}/static/app.js", timeout=30).status_code == 200
    answer = httpx.post(f"{url}/answer", json={"question": ANSWERABLE}, timeout=60)
    assert answer.status_code == 200 and answer.json()["found"] is True
    after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "sitetune_requests_total"
    assert moved(requests, method="GET", endpoint="/search", status="200") == 1
    assert moved(requests, method="GET", endpoint="/search", status="422") == 1
    assert moved(requests, method="GET", endpoint="unmatched", status="404") == 1
    assert moved(requests, method="GET", endpoint="/static/{path}", status="200") == 1
    assert moved(requests, method="POST", endpoint="/answer", status="200") == 1
    assert moved(requests, method="GET", endpoint="/metrics", status="200") == 1  # the first scrape
    latency = "sitetune_request_duration_seconds_count"
    assert moved(latency, method="GET", endpoint="/search", status="200") == 1
    assert moved(latency, method="POST", endpoint="/answer", status="200") == 1
    assert moved("sitetune_answers_total", mode="extractive") == 1
    assert moved("sitetune_answers_not_found_total", mode="extractive") == 0
    # Raw paths never become labels (bounded cardinality), and every name is sitetune's.
    assert not any("4711" in v or "app.js" in v for _, labels in after for _, v in labels)
    assert {name.split("_")[0] for name, _ in after} == {"sitetune"}


def test_an_unanswerable_question_moves_the_not_found_counter(served: Served) -> None:
    before = scrape(served.url)
    off = httpx.post(f"{served.url}/answer", json={"question": UNANSWERABLE, "k": 3}, timeout=60)
    assert off.status_code == 200 and off.json()["found"] is False
    after = scrape(served.url)
    for name in ("sitetune_answers_total", "sitetune_answers_not_found_total"):
        assert value(after, name, mode="extractive") - value(before, name, mode="extractive") == 1


def test_store_gauges_show_the_served_generation(served: Served) -> None:
    from sitetune.index.store import EmbeddedStore

    store = EmbeddedStore(served.store)
    current = store.current()
    assert current is not None
    manifest = store.read_manifest(current)
    samples = scrape(served.url)
    assert value(samples, "sitetune_store_chunks") == manifest.count > 0
    assert value(samples, "sitetune_store_generation") == current
    age = value(samples, "sitetune_generation_age_seconds")
    # Built this session (the store is written at the start of it): older than 0 s, younger than a day.
    assert 0 < age < 86_400
    assert any(name.startswith("sitetune_process_") for name, _ in samples)


def test_metrics_are_not_rate_limited_or_logged_as_queries_and_check_the_host(served: Served) -> None:
    questions_before = served.query_log.read_text(encoding="utf-8") if served.query_log.exists() else ""
    # Past the feedback limiter's burst and well past anything a scraper sends: every scrape answered.
    statuses = [httpx.get(f"{served.url}/metrics", timeout=10).status_code for _ in range(25)]
    assert statuses == [200] * 25
    after = served.query_log.read_text(encoding="utf-8") if served.query_log.exists() else ""
    assert after == questions_before
    foreign = httpx.get(f"{served.url}/metrics", headers={"Host": "attacker.example"}, timeout=10)
    assert foreign.status_code == 400 and "sitetune_" not in foreign.text


def _log_lines(log: Path, request_id: str, timeout_s: float = 10) -> list[dict[str, Any]]:
    """Every line of the server's output as JSON (each must parse), once ``request_id``'s line is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        if any(e.get("request_id") == request_id and "status" in e for e in lines) or time.monotonic() > deadline:
            return lines


def test_json_logs_carry_the_request_id_returned_in_the_header(served: Served) -> None:
    url = served.url
    secret_query = "zebracrossing deadline"
    kept = httpx.get(f"{url}/search", params={"q": secret_query}, headers={"X-Request-ID": "client-42.a:b_c"},
                     timeout=30)
    assert kept.status_code == 200 and kept.headers["x-request-id"] == "client-42.a:b_c"
    for bad in ("has space", "x" * 200, "quote\"d", "-leading-dash"):
        replaced = httpx.get(f"{url}/healthz", headers={"X-Request-ID": bad}, timeout=10)
        assert replaced.headers["x-request-id"] != bad and len(replaced.headers["x-request-id"]) == 32
    invalid = httpx.post(f"{url}/answer", json={"question": ""}, timeout=30)
    generated = invalid.headers["x-request-id"]
    assert invalid.status_code == 422 and len(generated) == 32 and int(generated, 16) >= 0

    lines = _log_lines(served.log, generated)  # json.loads on every line of stdout and stderr
    assert lines and all({"timestamp", "level", "logger", "message"} <= set(e) for e in lines)
    (search_line,) = [e for e in lines if e.get("request_id") == "client-42.a:b_c"]
    assert search_line["logger"] == "sitetune.serve.requests" and search_line["level"] == "INFO"
    assert (search_line["method"], search_line["path"], search_line["status"]) == ("GET", "/search", 200)
    assert isinstance(search_line["duration_ms"], float) and search_line["duration_ms"] >= 0
    assert search_line["timestamp"].endswith("Z")
    (error_line,) = [e for e in lines if e.get("request_id") == generated]
    assert (error_line["method"], error_line["path"], error_line["status"]) == ("POST", "/answer", 422)
    assert secret_query not in served.log.read_text(encoding="utf-8")  # paths are logged without queries
    started = [e["message"] for e in lines if e["logger"] == "sitetune.serve"]
    port = url.rsplit(":", 1)[1]
    assert f"health http://127.0.0.1:{port}/healthz, metrics http://127.0.0.1:{port}/metrics" in started


# --- In process: settings of their own ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def searcher(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder):  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as s:
        yield s


def test_each_app_counts_alone_and_metrics_can_be_turned_off(searcher: Any) -> None:
    with live_server(create_app(searcher)) as one, live_server(create_app(searcher)) as two:
        httpx.get(f"{one}/search", params={"q": "deadline"}, timeout=30)
        assert value(scrape(one), "sitetune_requests_total", method="GET", endpoint="/search", status="200") == 1
        assert value(scrape(two), "sitetune_requests_total", method="GET", endpoint="/search", status="200") == 0
    off = create_app(searcher, ServeConfig(metrics=False))
    assert off.state.metrics is None
    with live_server(off) as url:
        response = httpx.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 404 and response.headers["x-request-id"]


def test_refreshes_are_recorded_through_the_app_state(searcher: Any) -> None:
    app = create_app(searcher)
    metrics = app.state.metrics
    metrics.record_refresh(12.5, succeeded=True)
    with pytest.raises(RuntimeError), metrics.refresh_timer():
        raise RuntimeError("the crawl failed")
    with live_server(app) as url:
        samples = scrape(url)
    assert value(samples, "sitetune_refresh_total", outcome="success") == 1
    assert value(samples, "sitetune_refresh_total", outcome="failure") == 1
    assert value(samples, "sitetune_refresh_duration_seconds_sum", outcome="success") == 12.5
    assert value(samples, "sitetune_refresh_duration_seconds_count", outcome="failure") == 1
    assert abs(value(samples, "sitetune_refresh_last_success_timestamp_seconds") - time.time()) < 600


def test_llm_failures_and_the_open_breaker_are_counted(searcher: Any) -> None:
    from sitetune.serve.logformat import JsonFormatter

    closed = free_port()  # nothing listens: each call fails at once with a refused connection
    llm = LLMConfig(url=f"http://127.0.0.1:{closed}/v1", model="m", breaker_failures=2, breaker_cooldown_s=600)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sitetune.answer")
    logger.addHandler(handler)
    ids = []
    try:
        with live_server(create_app(searcher, llm=llm)) as url:
            for _ in range(3):
                answer = httpx.post(f"{url}/answer", json={"question": ANSWERABLE}, timeout=60)
                assert answer.status_code == 200 and answer.json()["warning"]
                ids.append(answer.headers["x-request-id"])
            samples = scrape(url)
    finally:
        logger.removeHandler(handler)
    # The failure's warning, logged in the threadpool, names the request it failed for.
    failures = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["request_id"] for e in failures if "generative answer failed" in e["message"]] == ids[:2]
    assert value(samples, "sitetune_llm_errors_total", reason="call_failed") == 2
    assert value(samples, "sitetune_llm_errors_total", reason="breaker_open") == 1
    assert value(samples, "sitetune_llm_call_duration_seconds_count", outcome="error") == 2
    assert value(samples, "sitetune_llm_call_duration_seconds_count", outcome="ok") == 0
    assert value(samples, "sitetune_answers_total", mode="extractive") == 3  # each fell back


def test_a_500_carries_the_request_id_and_is_counted_and_logged(
    searcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(searcher)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a secret detail")

    with caplog.at_level(logging.INFO, logger="sitetune.serve.requests"), live_server(app) as url:
        response = httpx.get(f"{url}/boom", headers={"X-Request-ID": "trace-500"}, timeout=10)
        assert response.status_code == 500 and response.headers["x-request-id"] == "trace-500"
        assert value(scrape(url), "sitetune_requests_total", method="GET", endpoint="/boom", status="500") == 1
    (line,) = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-500"]
    assert line.levelno == logging.ERROR and line.status == 500 and line.path == "/boom"  # type: ignore[attr-defined]


# --- Several workers: one scrape sees them all --------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="Linux processes")
def test_a_scrape_sums_every_worker_and_the_metrics_folder_is_removed(
    cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    store = session_store(cbs_csv, tmp_path_factory)
    temp = tmp_path / "tmp"
    temp.mkdir()
    port, log = free_port(), tmp_path / "workers.log"
    process = start_serve(store, port, log, "--no-warm", "--workers", "2", env={"TMPDIR": str(temp)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        assert [p.name.startswith("sitetune-metrics-") for p in temp.iterdir()].count(True) == 1
        workers: set[str] = set()
        sent = 0
        deadline = time.monotonic() + 90
        with ThreadPoolExecutor(6) as pool:
            while len(workers) < 2 and time.monotonic() < deadline:
                responses = list(pool.map(
                    lambda i: httpx.get(f"{url}/search", params={"q": f"deadline {i}"}, timeout=30), range(12)
                ))
                assert all(r.status_code == 200 for r in responses)
                sent += len(responses)
                workers |= {r.headers["x-sitetune-worker"] for r in responses}
        assert len(workers) == 2, "the second worker never answered"
        # Whichever worker answers a scrape, it counts every worker's searches.
        for _ in range(4):
            samples = scrape(url)
            assert value(samples, "sitetune_requests_total", method="GET", endpoint="/search", status="200") == sent
            count = value(samples, "sitetune_request_duration_seconds_count", method="GET", endpoint="/search",
                          status="200")
            assert count == sent
            assert value(samples, "sitetune_store_chunks") > 0
    finally:
        stop(process)
    assert process.returncode == 0, log.read_text()
    assert not list(temp.glob("sitetune-metrics-*")), "the metrics folder outlived the server"
