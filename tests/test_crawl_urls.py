"""URL hygiene (tracking and session parameters) and the bounded skipped-URL list of the crawl report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.config import MAX_SKIPPED_LISTED, CrawlConfig
from sitetune.crawl import CrawlReport, crawl_folder
from sitetune.crawl.report import SkipLog, SkippedUrl
from sitetune.crawl.urls import TRACKING_PARAMS, normalize_url

PAGE = "https://www.example.edu/graduate/msc-finance"


@pytest.mark.parametrize("name", [
    "utm_source", "utm_medium", "UTM_Campaign", "utm_term", "utm_content", "utm_id",
    "gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl", "yclid", "dclid", "igshid", "ref_src",
    "jsessionid", "JSESSIONID", "phpsessid", "PHPSESSID", "sid", "SID", "sessionid", "session_id",
])
def test_tracking_and_session_query_parameters_are_dropped(name: str) -> None:
    assert normalize_url(f"{PAGE}?{name}=a1b2c3") == PAGE
    assert normalize_url(f"{PAGE}?year=2026&{name}=a1b2c3&intake=autumn") == f"{PAGE}?intake=autumn&year=2026"
    assert normalize_url(f"{PAGE}?{name}") == PAGE  # a blank value goes too


def test_every_listed_tracking_parameter_is_dropped() -> None:
    for pattern in TRACKING_PARAMS:
        name = pattern.replace("*", "source")
        assert normalize_url(f"{PAGE}?{name}=x&q=1") == f"{PAGE}?q=1", name


@pytest.mark.parametrize("name", ["side", "sidx", "ssid", "sids", "utm", "ga", "gl", "ref", "src", "session",
                                  "page", "q", "lang"])
def test_other_query_parameters_stay(name: str) -> None:
    """Only whole names match: ``sid`` is a session id, ``side`` and ``ssid`` are page parameters."""
    assert normalize_url(f"{PAGE}?{name}=7&utm_source=news") == f"{PAGE}?{name}=7"


def test_one_page_under_many_tracking_urls_normalises_to_one_url() -> None:
    links = [
        f"{PAGE}?utm_source=newsletter&utm_medium=email",
        f"{PAGE}?fbclid=IwAR0abc",
        f"{PAGE}?_gl=1*abc*_ga*MTIz&_ga=2.1.2.3",
        f"{PAGE}?igshid=MzRlODBi&yclid=123",
        f"{PAGE}?ref_src=twsrc%5Etfw#apply",
        f"{PAGE};jsessionid=0A1B2C3D4E",
        f"{PAGE};JSESSIONID=0A1B2C3D4E?gclid=xyz",
    ]
    assert {normalize_url(u) for u in links} == {PAGE}


@pytest.mark.parametrize(("url", "expected"), [
    ("https://h.example/shop/item.jsp;jsessionid=0A1B2C?id=7", "https://h.example/shop/item.jsp?id=7"),
    ("https://h.example/shop/item.jsp;JSESSIONID=0A1B2C", "https://h.example/shop/item.jsp"),
    ("https://h.example/index.php;phpsessid=9f8e7d", "https://h.example/index.php"),
    ("https://h.example/index.php;PHPSESSID=9f8e7d", "https://h.example/index.php"),
    ("https://h.example/page;sid=42", "https://h.example/page"),
    ("https://h.example/page;sessionid=42;session_id=43", "https://h.example/page"),
    ("https://h.example/app;jsessionid=X/list/", "https://h.example/app/list/"),  # not only the last segment
    ("https://h.example/a;v=2;jsessionid=X;lang=en/b", "https://h.example/a;v=2;lang=en/b"),  # others stay
    ("https://h.example/a;sidebar=1", "https://h.example/a;sidebar=1"),  # whole names only
    ("https://h.example/a;jsessionid=X/../b", "https://h.example/b"),
])
def test_session_ids_in_the_path_are_dropped(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def _skips(n: int, reason: str, host: str = "https://h.example") -> list[SkippedUrl]:
    return [SkippedUrl(f"{host}/{reason}/{i:07d}", reason, f"detail {i}") for i in range(n)]


def test_skip_log_caps_the_list_and_counts_every_skip_exactly() -> None:
    entries = [*_skips(5000, "pattern-trap"), *_skips(30, "http-404"), *_skips(1, "robots")]
    random.Random(7).shuffle(entries)
    log = SkipLog(limit=10)
    for entry in entries:
        assert log.add(entry)
    assert len(log) == 5031
    assert log.reason_counts() == {"http-404": 30, "pattern-trap": 5000, "robots": 1}
    listed = log.listed()
    assert len(listed) == 10
    assert [s.url for s in listed] == sorted(s.url for s in listed)
    # Reasons take turns: the one robots URL shows beside 5,000 traps, and each reason keeps its smallest URLs.
    by_reason = {r: [s.url for s in listed if s.reason == r] for r in ("http-404", "pattern-trap", "robots")}
    assert by_reason == {"http-404": [f"https://h.example/http-404/{i:07d}" for i in range(5)],
                         "pattern-trap": [f"https://h.example/pattern-trap/{i:07d}" for i in range(4)],
                         "robots": ["https://h.example/robots/0000000"]}
    # The order the workers met the URLs in does not matter.
    again = SkipLog(limit=10)
    for entry in sorted(entries, key=lambda s: s.url, reverse=True):
        again.add(entry)
    assert again.listed() == listed


def test_skip_log_counts_a_url_once_under_its_first_reason() -> None:
    log = SkipLog(limit=10)
    assert log.add(SkippedUrl("https://h.example/a", "http-404"))
    assert not log.add(SkippedUrl("https://h.example/a", "duplicate-content"))
    assert "https://h.example/a" in log and len(log) == 1
    assert log.reason_counts() == {"http-404": 1}
    assert [s.reason for s in log.listed()] == ["http-404"]


def test_skip_log_under_the_cap_lists_everything() -> None:
    entries = [*_skips(3, "robots"), *_skips(4, "non-html")]
    log = SkipLog(limit=7)
    for entry in reversed(entries):
        log.add(entry)
    assert log.listed() == sorted(entries, key=lambda s: s.url)
    assert SkipLog(limit=0).listed() == []


def test_report_marks_a_truncated_list_and_keeps_exact_counts(tmp_path: Path) -> None:
    log = SkipLog(limit=MAX_SKIPPED_LISTED)
    for entry in [*_skips(MAX_SKIPPED_LISTED + 500, "query-trap"), *_skips(2, "robots")]:
        log.add(entry)
    report = CrawlReport(start_url="https://h.example/", prefix="https://h.example/", skipped=log.listed(),
                         skipped_counts=log.reason_counts())
    assert len(report.skipped) == MAX_SKIPPED_LISTED
    assert report.skip_reasons() == {"query-trap": MAX_SKIPPED_LISTED + 500, "robots": 2}
    assert report.skipped_total == MAX_SKIPPED_LISTED + 502 and report.skipped_truncated
    saved = json.loads(report.write(tmp_path / "r.crawl.json").read_text())
    assert len(saved["skipped"]) == MAX_SKIPPED_LISTED
    assert saved["skip_reasons"] == {"query-trap": MAX_SKIPPED_LISTED + 500, "robots": 2}
    assert saved["skipped_total"] == MAX_SKIPPED_LISTED + 502 and saved["skipped_truncated"] is True
    assert "skipped_counts" not in saved  # written once, as skip_reasons


def test_report_built_from_a_plain_list_counts_it() -> None:
    report = CrawlReport(start_url="https://h.example/", prefix="https://h.example/",
                         skipped=[*_skips(2, "robots"), *_skips(1, "non-html")])
    assert report.skip_reasons() == {"non-html": 1, "robots": 2}
    assert report.skipped_total == 3 and not report.skipped_truncated
    assert report.to_dict()["skipped_truncated"] is False


def _site_with_many_offsite_links(folder: Path, offsite: int) -> Path:
    """One page linking to ``offsite`` other hosts, one missing page and one mailto: link."""
    folder.mkdir()
    links = "".join(f'<a href="https://elsewhere{i}.example/">site {i}</a> ' for i in range(offsite))
    (folder / "index.html").write_text(
        "<html><body><main><h1>Links</h1><h2>Partners</h2><p>Our partner universities.</p>"
        f'{links}<a href="missing.html">gone</a> <a href="mailto:office@example.edu">mail</a></main></body></html>')
    return folder


def test_crawl_with_more_skips_than_the_cap_lists_the_cap_and_counts_all(tmp_path: Path) -> None:
    site = _site_with_many_offsite_links(tmp_path / "site", 40)
    report = crawl_folder(site, tmp_path / "c.jsonl", config=CrawlConfig(delay_s=0.0, max_skipped_listed=5),
                          progress=False)
    assert report.skip_reasons() == {"http-404": 1, "not-http": 1, "outside-prefix": 40}
    assert len(report.skipped) == 5 and report.skipped_total == 42 and report.skipped_truncated
    assert {s.reason for s in report.skipped} == {"http-404", "not-http", "outside-prefix"}
    saved = json.loads((tmp_path / "c.crawl.json").read_text())
    assert len(saved["skipped"]) == 5 and saved["skipped_total"] == 42 and saved["skipped_truncated"] is True


def test_cli_crawl_json_and_summary_say_the_list_was_truncated(tmp_path: Path) -> None:
    site = _site_with_many_offsite_links(tmp_path / "site", MAX_SKIPPED_LISTED + 20)
    runner = CliRunner()
    args = ["crawl", str(site), "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "a.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    total = MAX_SKIPPED_LISTED + 22
    assert report["skip_reasons"] == {"http-404": 1, "not-http": 1, "outside-prefix": MAX_SKIPPED_LISTED + 20}
    assert report["skipped_total"] == total and report["skipped_truncated"] is True
    assert len(report["skipped"]) == MAX_SKIPPED_LISTED
    summary = runner.invoke(app, [*args, "--out", str(tmp_path / "b.jsonl")])
    assert summary.exit_code == 0, summary.output
    assert f"skipped   {total:>6}" in summary.output
    assert f"the report lists {MAX_SKIPPED_LISTED}" in summary.output
