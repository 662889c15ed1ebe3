"""The crawler against a misbehaving site on 127.0.0.1: it finishes, bounded, naming every skip."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpcore
import pytest
from typer.testing import CliRunner

from crawl_helpers import (
    CRAWL_DELAY_S,
    HUGE_BYTES,
    INDEX_LINKS,
    MB,
    RFC9309_LINKS,
    SECRET,
    ZURICH,
    serve_nasty,
)
from sitetune.cli.main import app
from sitetune.config import ChunkingConfig, CrawlConfig
from sitetune.crawl import CrawlReport, crawl_site, sectionize_source
from sitetune.crawl.cache import PageCache
from sitetune.crawl.crawler import Crawl
from sitetune.crawl.guard import FetchGuard, Refused, non_public
from sitetune.crawl.robots import MAX_CRAWL_DELAY_S, ROBOTS_MAX_BYTES
from sitetune.errors import InputError, SitetuneError
from sitetune.recordio import read_records

runner = CliRunner()

TIGHT = CrawlConfig(
    max_pages=40, delay_s=0.0, concurrency=4, timeout_s=1.5, retries=2, max_bytes=2 * MB, max_redirects=4,
    max_depth=8, total_time_s=30.0, page_deadline_s=2.5, max_total_bytes=20 * MB, max_per_pattern=5,
    max_query_params=3, max_url_length=300, backoff_s=0.05, max_backoff_s=0.2,
)


@pytest.fixture(scope="module")
def nasty_crawl(tmp_path_factory: pytest.TempPathFactory) -> tuple[CrawlReport, Path, float]:
    out = tmp_path_factory.mktemp("nasty") / "corpus.jsonl"
    began = time.monotonic()
    with serve_nasty() as base:
        report = crawl_site(base + "/", out, config=TIGHT, progress=False)
    return report, out, time.monotonic() - began


def _reason(report: CrawlReport, path: str) -> str:
    found = [s.reason for s in report.skipped
             if s.url.split("://", 1)[1].split("/", 1)[-1] == path.lstrip("/")]
    assert found, f"{path} is not in the skipped list: {[s.url for s in report.skipped]}"
    return found[0]


def test_crawl_finishes_bounded_in_time_bytes_and_pages(nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    report, _out, elapsed = nasty_crawl
    # The drip page alone would take ~100 s and the huge page 50 MB: both must be cut off.
    assert elapsed < 20, f"crawl took {elapsed:.1f} s"
    assert report.wire_bytes < 3 * TIGHT.max_bytes
    assert len(report.pages) <= TIGHT.max_pages


@pytest.mark.parametrize(("path", "reason"), [
    ("/loop-a", "redirect-loop"),
    ("/chain/0", "too-many-redirects"),
    ("/drip", "deadline"),
    ("/huge", "too-large"),
    ("/huge-declared", "too-large"),
    ("/bomb", "decompressed-too-large"),
    ("/always-503", "http-503"),
    ("/rate-limited", "http-429"),
    ("/binary.zip", "non-html"),
    ("/private/secret", "robots"),
])
def test_each_trap_is_skipped_with_its_reason(nasty_crawl: tuple[CrawlReport, Path, float], path: str,
                                              reason: str) -> None:
    assert _reason(nasty_crawl[0], path) == reason


def test_external_links_are_reported_outside_prefix(nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    reasons = {s.url: s.reason for s in nasty_crawl[0].skipped}
    assert reasons["https://elsewhere.example/"] == "outside-prefix"


def test_endless_url_spaces_are_cut_off(nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    report = nasty_crawl[0]
    calendar = [p for p in report.pages if "/calendar" in p.url]
    assert len(calendar) == TIGHT.max_per_pattern
    assert any(s.reason == "pattern-trap" and "/calendar" in s.url for s in report.skipped)
    grow = [p for p in report.pages if "/grow" in p.url]
    assert 0 < len(grow) <= TIGHT.max_query_params + 1
    assert any(s.reason == "query-trap" and "/grow" in s.url for s in report.skipped)
    # Session ids are dropped, so the ever-new ?sid= links collapse onto three listing pages.
    sessions = [p.url for p in report.pages if "/session" in p.url]
    assert len(sessions) == 3 and not any("sid=" in u for u in sessions)


def test_retries_recover_from_transient_503(nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    assert any(p.url.endswith("/flaky") for p in nasty_crawl[0].pages)


def test_wrong_missing_and_contradicted_charsets_decode_right(
        nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    report, out, _ = nasty_crawl
    by_url = {r.url.rsplit("/", 1)[1]: r.text for r in read_records(out) if "/cs/" in r.url}
    assert set(by_url) == {"utf8-labelled-latin1-body", "latin1-labelled-utf8-body", "no-charset-meta",
                           "bom-contradicts"}, report.skipped
    for name, text in by_url.items():
        assert ZURICH in text, f"{name}: {text!r}"


def test_report_file_lists_every_skip(nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    report, out, _ = nasty_crawl
    saved = json.loads(out.with_suffix(".crawl.json").read_text())
    assert len(saved["skipped"]) == len(report.skipped) >= 12
    assert all(s["reason"] for s in saved["skipped"])
    assert saved["skip_reasons"]["robots"] == 1
    assert saved["records"] == len(read_records(out))


def test_robots_5xx_means_disallow_all(tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    with serve_nasty(robots="503") as base, pytest.raises(SitetuneError, match="robots"):
        crawl_site(base + "/ok", out, prefix=base + "/", config=TIGHT, progress=False)
    saved = json.loads(out.with_suffix(".crawl.json").read_text())
    assert saved["skipped"][0]["reason"] == "robots"
    assert next(iter(saved["robots"].values())).startswith("unreachable")
    assert not out.exists()


def test_robots_404_means_allow_all(tmp_path: Path) -> None:
    with serve_nasty(robots="404") as base:
        report = crawl_site(base + "/ok", tmp_path / "c.csv", prefix=base + "/", config=TIGHT, progress=False)
    assert [p.url.rsplit("/", 1)[1] for p in report.pages] == ["ok"]
    assert next(iter(report.robots.values())).startswith("absent")


def test_robots_429_means_disallow_all(tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    with serve_nasty(robots="429") as base, pytest.raises(SitetuneError, match="robots"):
        crawl_site(base + "/ok", out, prefix=base + "/", config=TIGHT, progress=False)
    saved = json.loads(out.with_suffix(".crawl.json").read_text())
    assert [s["reason"] for s in saved["skipped"]] == ["robots"]
    detail = next(iter(saved["robots"].values()))
    assert detail.startswith("unreachable") and "429" in detail


def test_robots_rfc9309_groups_wildcards_and_longest_match(tmp_path: Path) -> None:
    with serve_nasty(robots="rfc9309") as base:
        report = crawl_site(base + "/rfc9309", tmp_path / "c.csv", prefix=base + "/", config=TIGHT,
                            progress=False)
    crawled = {p.url.split("/", 3)[3] for p in report.pages}
    skipped = {s.url.split("/", 3)[3]: s for s in report.skipped}
    for link, allowed in RFC9309_LINKS.items():
        path = link.lstrip("/")
        if allowed:
            assert path in crawled, f"{link} is allowed by RFC 9309 but was not crawled: {skipped.get(path)}"
        else:
            assert path not in crawled and skipped[path].reason == "robots", f"{link}: {skipped.get(path)}"
    assert "redirects to" in skipped["go-private"].detail and "/private/secret" in skipped["go-private"].detail


def test_robots_crawl_delay_spaces_the_requests(tmp_path: Path) -> None:
    config = replace(TIGHT, max_per_pattern=10_000, max_depth=10_000, max_pages=4, concurrency=4)
    arrivals: list[tuple[float, str]] = []
    with serve_nasty(robots="delay", times=arrivals) as base:
        report = crawl_site(base + "/calendar?month=0", tmp_path / "c.csv", prefix=base + "/", config=config,
                            progress=False)
    times = [t for t, path in arrivals if path != "/robots.txt"]
    assert len(report.pages) == 4 and len(times) == 4
    # The limiter spaces request starts; arrivals jitter around them (a busy event loop sends one late and
    # the next on time), so each gap gets slack, and the span the delay sets gets less. Without the
    # delay, four requests arrive within a few milliseconds. The first page follows robots.txt at once.
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert min(gaps) >= 0.5 * CRAWL_DELAY_S and times[-1] - times[1] >= 0.9 * 2 * CRAWL_DELAY_S, gaps


@pytest.mark.parametrize(("robots", "parsed"), [("at-cap", True), ("over-cap", False)])
def test_robots_size_cap(tmp_path: Path, robots: str, parsed: bool) -> None:
    """A robots.txt of exactly 500 KiB is read whole (its last line applies); one byte more is refused."""
    assert ROBOTS_MAX_BYTES >= 500 * 1024  # RFC 9309 section 2.5: a parsing limit of at least 500 KiB
    out = tmp_path / "c.csv"
    with serve_nasty(robots=robots) as base:
        if parsed:
            report = crawl_site(base + "/", out, prefix=base + "/", config=TIGHT, progress=False)
            assert _reason(report, "/private/secret") == "robots"
            assert any(p.url.endswith("/ok") for p in report.pages)
        else:
            with pytest.raises(SitetuneError, match="robots"):
                crawl_site(base + "/ok", out, prefix=base + "/", config=TIGHT, progress=False)
    detail = next(iter(json.loads(out.with_suffix(".crawl.json").read_text())["robots"].values()))
    if parsed:
        assert detail == "parsed: HTTP 200"
    else:
        assert detail.startswith("unreachable") and "too-large" in detail, detail


def test_whole_crawl_deadline_stops_an_endless_calendar(tmp_path: Path) -> None:
    config = replace(TIGHT, max_per_pattern=10_000, max_depth=10_000, total_time_s=1.5, delay_s=0.05)
    began = time.monotonic()
    with serve_nasty() as base:
        report = crawl_site(base + "/calendar?month=0", tmp_path / "c.csv", prefix=base + "/", config=config,
                            progress=False)
    assert time.monotonic() - began < 6
    assert report.stopped == "crawl-deadline"
    assert any(s.reason == "crawl-deadline" for s in report.skipped)


def test_max_pages_stops_the_crawl(tmp_path: Path) -> None:
    config = replace(TIGHT, max_per_pattern=10_000, max_depth=10_000, max_pages=4)
    with serve_nasty() as base:
        report = crawl_site(base + "/calendar?month=0", tmp_path / "c.csv", prefix=base + "/", config=config,
                            progress=False)
    assert len(report.pages) == 4
    assert report.stopped == "max-pages"


def test_huge_page_is_not_downloaded_whole(tmp_path: Path) -> None:
    config = replace(TIGHT, max_bytes=1 * MB)
    with serve_nasty() as base, pytest.raises(SitetuneError, match="too-large"):
        crawl_site(base + "/huge", tmp_path / "c.csv", prefix=base + "/", config=config, progress=False)
    saved = json.loads((tmp_path / "c.crawl.json").read_text())
    assert config.max_bytes < saved["wire_bytes"] < HUGE_BYTES / 10


def test_byte_budget_stops_the_crawl(tmp_path: Path) -> None:
    config = replace(TIGHT, max_per_pattern=10_000, max_depth=10_000, max_total_bytes=2_000)
    with serve_nasty() as base:
        report = crawl_site(base + "/calendar?month=0", tmp_path / "c.csv", prefix=base + "/", config=config,
                            progress=False)
    assert report.stopped == "byte-budget"
    assert 0 < len(report.pages) < 20
    assert report.wire_bytes < config.max_total_bytes + 2 * 1024


def test_every_linked_url_is_either_a_page_or_a_reported_skip(
        nasty_crawl: tuple[CrawlReport, Path, float]) -> None:
    from sitetune.crawl.urls import normalize_url

    report = nasty_crawl[0]
    base = report.start_url
    accounted = {p.url for p in report.pages} | {s.url for s in report.skipped}
    for link in INDEX_LINKS:
        url = normalize_url(link, base)
        assert url in accounted, f"{url} is neither crawled nor reported"


# --- Where a fetch may go (sitetune.crawl.guard): redirects and addresses --------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host a TCP connection is opened to; 169.254.169.254 fails at once instead of timing out."""
    opened: list[str] = []
    original = httpcore.AnyIOBackend.connect_tcp

    async def connect_tcp(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        opened.append(host)
        if host.startswith("169.254."):
            raise httpcore.ConnectError("no metadata service in tests")
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
    return opened


def test_sectionize_refuses_a_redirect_to_another_port(connections: list[str]) -> None:
    other: list[tuple[float, str]] = []
    with serve_nasty(times=other) as internal, serve_nasty(away=internal + "/secret") as base:
        result = runner.invoke(app, ["sectionize", base + "/away"])
    assert result.exit_code == 2, result.output
    assert f"redirect to {internal}/secret refused" in result.output, result.output
    assert "another host or port" in result.output
    assert SECRET not in result.output
    assert other == [], "the internal server was contacted"


def test_sectionize_refuses_a_redirect_to_the_metadata_service(connections: list[str]) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    with serve_nasty(away=metadata) as base:
        with pytest.raises(InputError, match="off-site") as info:
            sectionize_source(base + "/away")
        result = runner.invoke(app, ["sectionize", base + "/away"])
    assert f"redirect to {metadata} refused" in str(info.value)
    assert result.exit_code == 2 and metadata in result.output, result.output
    assert not any(h.startswith("169.254.") for h in connections), connections  # refused before connecting
    assert connections  # the check above saw the connections that were made


def test_the_guard_refuses_the_metadata_address_even_on_its_own_origin() -> None:
    guard = FetchGuard.for_start("http://169.254.169.254/")  # named by the user: the one exemption
    guard.check("http://169.254.169.254/latest/meta-data/")
    guard = FetchGuard(frozenset({"http://169.254.169.254"}))  # allowed origin, but not named
    with pytest.raises(Refused, match="cloud metadata"):
        guard.check("http://169.254.169.254/latest/meta-data/")


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "not globally routable"), ("2002:7f00:1::1", "loopback"),
    ("93.184.216.34", None), ("2606:4700:4700::1111", None),
])
def test_non_public_addresses_are_named(address: str, kind: str | None) -> None:
    assert non_public(address) == kind


def test_a_host_name_that_resolves_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name is checked after resolution, at connect time (so DNS rebinding cannot slip past the check)."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes the IDNA-encoded bytes
        return original("127.0.0.1" if name == "intranet.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    arrivals: list[tuple[float, str]] = []
    with serve_nasty(times=arrivals) as base:
        url = base.replace("127.0.0.1", "intranet.example") + "/ok"
        with pytest.raises(InputError, match=r"intranet\.example resolves to 127\.0\.0\.1, a loopback address"):
            sectionize_source(url)
        with pytest.raises(SitetuneError, match=r"intranet\.example resolves to 127\.0\.0\.1"):
            crawl_site(url, None, config=TIGHT, progress=False)
        assert arrivals == []
        # Allowed on request: the name is then fetched (and resolved the same way).
        records = sectionize_source(url, allow_private_addresses=True)
    assert records[0].page_name == "A fine page" and [p for _, p in arrivals] == ["/ok"]


def test_a_start_url_on_loopback_is_fetched_and_its_own_redirects_followed() -> None:
    with serve_nasty() as base:
        records = sectionize_source(base + "/go-private")  # 302 to /private/secret on the same origin
    assert records[0].url == base + "/private/secret"


def test_robots_txt_redirected_off_host_is_not_followed(tmp_path: Path) -> None:
    other: list[tuple[float, str]] = []
    out = tmp_path / "c.csv"
    with (serve_nasty(robots="404", times=other) as elsewhere, serve_nasty(robots="away", away=elsewhere) as base,
          pytest.raises(SitetuneError, match="robots")):
        crawl_site(base + "/ok", out, prefix=base + "/", config=TIGHT, progress=False)
    assert other == [], "the robots.txt redirect was followed"
    detail = next(iter(json.loads(out.with_suffix(".crawl.json").read_text())["robots"].values()))
    assert detail.startswith("unreachable: off-site") and f"redirect to {elsewhere}/robots.txt refused" in detail


# --- Crawl-delay and the crawl's time budget -----------------------------------------------------------


def _crawl(base: str, path: str, config: CrawlConfig, tmp_path: Path) -> tuple[Crawl, CrawlReport]:
    crawl = Crawl(base + path, base + "/", config, PageCache(tmp_path / "cache"), ChunkingConfig(), progress=False)
    # A bound on the test itself: a crawl that obeys Crawl-delay: 1e9 fails here instead of hanging.
    return crawl, asyncio.run(asyncio.wait_for(crawl.run(), 20))


def test_a_huge_crawl_delay_is_clamped(tmp_path: Path) -> None:
    with serve_nasty(robots="huge-delay") as base:
        crawl, report = _crawl(base, "/ok", replace(TIGHT, max_pages=1), tmp_path)
    assert MAX_CRAWL_DELAY_S == 30.0
    assert crawl.limiter.delay_s == MAX_CRAWL_DELAY_S
    assert [p.url.rsplit("/", 1)[1] for p in report.pages] == ["ok"]
    assert "Crawl-delay 1e+09 s clamped to 30 s" in next(iter(report.robots.values()))


def test_a_wait_past_the_time_budget_ends_the_crawl_without_sleeping(tmp_path: Path) -> None:
    config = replace(TIGHT, max_per_pattern=10_000, max_depth=10_000, total_time_s=3.0)
    began = time.monotonic()
    with serve_nasty(robots="huge-delay") as base:
        _, report = _crawl(base, "/calendar?month=0", config, tmp_path)
    assert time.monotonic() - began < config.total_time_s  # the 30 s wait was never slept
    assert len(report.pages) == 1  # the first page right after robots.txt; the second would be 30 s later
    assert report.stopped == "crawl-deadline"
    waited = [s for s in report.skipped if s.reason == "crawl-deadline"]
    assert waited and "could start only in" in waited[0].detail, report.skipped


def test_a_retry_wait_past_the_time_budget_is_not_slept(tmp_path: Path) -> None:
    # /rate-limited answers 429 with Retry-After: 3600, capped to max_backoff_s = 30 s per retry.
    config = replace(TIGHT, max_backoff_s=30.0, total_time_s=3.0)
    began = time.monotonic()
    with serve_nasty() as base:
        _, report = _crawl(base, "/rate-limited", config, tmp_path)
    assert time.monotonic() - began < config.total_time_s
    [skip] = [s for s in report.skipped if s.url.endswith("/rate-limited")]
    assert skip.reason == "crawl-deadline" and "a retry could start only in 30 s" in skip.detail
