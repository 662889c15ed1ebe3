"""The crawler on the bundled sample site, served for real on 127.0.0.1, and the crawl CLI."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.config import CrawlConfig
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.crawl.localsite import load_site_spec, serve_site
from sitetune.errors import InputError
from sitetune.recordio import read_records

FAST = CrawlConfig(delay_s=0.0, backoff_s=0.05, max_backoff_s=0.1, timeout_s=5.0)
PROGRAMMES = sorted(p.name for p in (sample_site_dir() / "programmes").glob("*.html"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("cold")
    report = crawl_folder(sample_site_dir(), work / "corpus.csv", config=FAST, progress=False)
    return report, work


def test_sample_site_ships_with_the_package() -> None:
    site = sample_site_dir()
    assert (site / "index.html").is_file() and (site / "robots.txt").is_file()
    assert len(PROGRAMMES) >= 5
    assert load_site_spec(site).public_base == "https://www.harbour-business.example/"


def test_crawl_finds_every_programme_and_uses_public_urls(cold) -> None:  # type: ignore[no-untyped-def]
    report, work = cold
    records = read_records(work / "corpus.csv")
    urls = {r.url for r in records}
    for name in PROGRAMMES:
        assert f"https://www.harbour-business.example/programmes/{name}" in urls
    assert all(u.startswith("https://www.harbour-business.example/") for u in urls)
    assert report.records == len(records)
    programme = [r for r in records if r.url.endswith("msc-supply-chain-management.html")]
    titles = {r.section_type for r in programme}
    assert {"Entry requirements", "English language requirements", "Application deadlines",
            "Selection criteria"} <= titles
    english = next(r.text for r in programme if r.section_type == "English language requirements")
    assert "IELTS" in english and "TOEFL" in english


def test_crawl_report_names_each_special_route(cold) -> None:  # type: ignore[no-untyped-def]
    report, work = cold
    reasons = {s.url.removeprefix("https://www.harbour-business.example"): s.reason for s in report.skipped}
    assert reasons["/internal/staff-notes.html"] == "robots"
    assert reasons["/programmes/mba-maritime-leadership.html"] == "http-404"
    assert reasons["/files/graduate-brochure.pdf"] == "non-html"
    assert reasons["https://www.harbour-alumni.example/"] == "outside-prefix"
    saved = json.loads((work / "corpus.crawl.json").read_text())
    assert saved["skip_reasons"] == report.skip_reasons()
    assert {p["url"] for p in saved["pages"]} == {p.url for p in report.pages}


def test_redirect_records_the_final_url(cold) -> None:  # type: ignore[no-untyped-def]
    report, work = cold
    urls = {r.url for r in read_records(work / "corpus.csv")}
    assert "https://www.harbour-business.example/admission/how-to-apply.html" in urls
    assert not any(u.endswith("/apply.html") for u in urls)
    via_redirect = [p for p in report.pages if p.url.endswith("/apply.html")]
    skipped = [s for s in report.skipped if s.url.endswith("/apply.html")]
    # Whichever of the two links is fetched first, the redirect lands on how-to-apply.html.
    assert (via_redirect and via_redirect[0].final_url.endswith("/admission/how-to-apply.html")) or (
        skipped and "how-to-apply.html" in skipped[0].detail)


def test_warm_cache_gives_the_same_corpus_and_refetches_nothing(cold, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report, work = cold
    warm = crawl_folder(sample_site_dir(), tmp_path / "warm.csv", config=FAST, progress=False,
                        cache_dir=work / "corpus.cache")
    assert (tmp_path / "warm.csv").read_bytes() == (work / "corpus.csv").read_bytes()
    assert warm.fetched == 0
    assert warm.not_modified >= len(report.pages)
    assert warm.wire_bytes < report.wire_bytes / 5


def test_rerun_refetches_only_the_changed_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(sample_site_dir(), site)
    cache = tmp_path / "cache"
    first = crawl_folder(site, tmp_path / "a.jsonl", config=FAST, progress=False, cache_dir=cache)
    page = site / "programmes" / "msc-digital-business.html"
    page.write_text(page.read_text().replace("IELTS Academic: overall 6.5", "IELTS Academic: overall 6.0"))
    second = crawl_folder(site, tmp_path / "b.jsonl", config=FAST, progress=False, cache_dir=cache)
    assert first.fetched >= len(PROGRAMMES) and second.fetched == 1
    changed = [p for p in second.pages if p.status == "fetched"]
    assert [p.url.rsplit("/", 1)[1] for p in changed] == ["msc-digital-business.html"]
    digital = " ".join(r.text for r in read_records(tmp_path / "b.jsonl") if "digital-business" in r.url)
    assert "IELTS Academic: overall 6.0" in digital and "overall 6.5" not in digital


def test_slow_page_times_out_under_a_short_timeout(tmp_path: Path) -> None:
    report = crawl_folder(sample_site_dir(), tmp_path / "c.csv", config=replace(FAST, timeout_s=0.2),
                          progress=False)
    reasons = {s.url.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert reasons["msc-accounting-and-audit.html"] == "timeout"


def test_retry_honours_retry_after_and_without_retries_the_503_is_reported(tmp_path: Path) -> None:
    began = time.monotonic()
    patient = crawl_folder(sample_site_dir(), tmp_path / "a.csv", progress=False,
                           config=replace(FAST, max_backoff_s=5.0))
    assert time.monotonic() - began >= 1.0  # the FAQ answers 503 with Retry-After: 1 once
    assert any(p.url.endswith("/admission/faq.html") for p in patient.pages)
    impatient = crawl_folder(sample_site_dir(), tmp_path / "b.csv", progress=False,
                             config=replace(FAST, retries=0))
    assert {s.reason for s in impatient.skipped if s.url.endswith("/admission/faq.html")} == {"http-503"}


def test_delay_spaces_requests(tmp_path: Path) -> None:
    began = time.monotonic()
    report = crawl_folder(sample_site_dir(), tmp_path / "c.csv", progress=False,
                          config=replace(FAST, delay_s=0.15, concurrency=4))
    requests = report.fetched + report.not_modified + 1  # + robots.txt
    assert time.monotonic() - began >= 0.15 * (requests - 1)


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crawl_folder(sample_site_dir(), tmp_path / "c.csv", config=FAST, progress=True)
    captured = capsys.readouterr()
    assert "crawl" in captured.err and "url" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_other_corpus_formats(cold, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    _, work = cold
    out = tmp_path / f"c{suffix}"
    crawl_folder(sample_site_dir(), out, config=FAST, progress=False, cache_dir=work / "corpus.cache")
    assert read_records(out) == read_records(work / "corpus.csv")


def test_local_server_answers_conditional_requests_and_refuses_traversal() -> None:
    with serve_site(sample_site_dir()) as base:
        first = httpx.get(base + "/index.html")
        assert first.status_code == 200 and first.headers["etag"]
        again = httpx.get(base + "/index.html", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        since = httpx.get(base + "/index.html", headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
        assert httpx.get(base + "/../../../etc/passwd").status_code == 404
        assert httpx.get(base + "/_site.json").status_code == 404
        moved = httpx.get(base + "/apply.html")
        assert moved.status_code == 301 and moved.headers["location"] == "/admission/how-to-apply.html"


def test_malformed_site_spec_names_the_route(tmp_path: Path) -> None:
    (tmp_path / "_site.json").write_text('{"routes": {"/x.html": {"colour": "red"}}}')
    with pytest.raises(InputError, match=r"_site.json.*/x.html"):
        load_site_spec(tmp_path)
    (tmp_path / "_site.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_site_spec(tmp_path)


runner = CliRunner()


def test_cli_crawl_sample_json(tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    args = ["crawl", "sample", "--out", str(out), "--delay", "0", "--no-progress", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["records"] == len(read_records(out)) > 0
    assert (tmp_path / "c.crawl.json").is_file() and (tmp_path / "c.cache").is_dir()


def test_cli_crawl_report_cache_and_max_pages(tmp_path: Path) -> None:
    with serve_site(sample_site_dir()) as base:
        result = runner.invoke(app, ["crawl", base + "/", "--out", str(tmp_path / "c.jsonl"), "--delay", "0",
                                     "--max-pages", "2", "--cache", str(tmp_path / "cc"), "--report",
                                     str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["pages"]) == 2 and report["stopped"] == "max-pages"
    assert any(s["reason"] == "max-pages" for s in report["skipped"])
    assert any((tmp_path / "cc").iterdir())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_max_pages_counts_a_page_served_at_two_urls_once(tmp_path: Path, concurrency: int) -> None:
    # `/` and `/index.html` are the same bytes, kept once: the copy must not use up the page budget (it
    # did, so `--max-pages 2` gave one page whenever `/index.html` was among the first fetched).
    config = replace(FAST, max_pages=2, concurrency=concurrency)
    report = crawl_folder(sample_site_dir(), tmp_path / "c.jsonl", config=config, progress=False)
    assert len(report.pages) == 2 and report.stopped == "max-pages"
    assert len({p.final_url for p in report.pages}) == 2


def test_cli_crawl_prefix_keeps_the_crawl_inside(tmp_path: Path) -> None:
    with serve_site(sample_site_dir()) as base:
        result = runner.invoke(app, ["crawl", base + "/programmes/msc-finance-and-investment.html", "--out",
                                     str(tmp_path / "c.csv"), "--prefix", base + "/programmes/",
                                     "--delay", "0",
                                     "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert all("/programmes/" in p["url"] for p in report["pages"])
    reasons = {s["url"].rsplit("/", 1)[-1]: s["reason"] for s in report["skipped"]}
    assert reasons["faq.html"] == "outside-prefix"


@pytest.mark.parametrize(("args", "message"), [
    (["crawl", "ftp://example.org/", "--out", "{tmp}/c.csv"], "not a valid http(s) URL"),
    (["crawl", "not a url", "--out", "{tmp}/c.csv"], "not a valid http(s) URL"),
    (["crawl", "http://127.0.0.1:9/", "--out", "{tmp}/c.txt"], "unknown extension '.txt'"),
    (["crawl", "http://127.0.0.1:9/a/", "--out", "{tmp}/c.csv", "--prefix", "http://127.0.0.1:9/b/"],
     "outside the prefix"),
    (["crawl", "http://127.0.0.1:9/", "--out", "{tmp}/c.csv", "--no-progress", "--retries", "0"],
     "unreachable"),
    (["crawl", "{tmp}", "--out", "{tmp}/c.csv"], "no page"),
])
def test_cli_crawl_bad_input_exits_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_crawl_folder_with_broken_site_spec_names_the_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>Hi</h1><p>Text.</p>")
    (site / "_site.json").write_text('{"routes": {"/a.html": {"status": "x", "colour": 1}}}')
    result = runner.invoke(app, ["crawl", str(site), "--out", str(tmp_path / "c.csv")])
    assert result.exit_code == 2
    assert "_site.json" in result.output and "/a.html" in result.output
    assert not (tmp_path / "c.csv").exists()


def _chain_site(folder: Path, pages: int) -> Path:
    """A folder of ``pages`` linked pages and no ``_site.json``, nothing slow or failing in it."""
    folder.mkdir()
    for i in range(pages):
        name = "index.html" if i == 0 else f"p{i}.html"
        links = "".join(f'<a href="p{j}.html">page {j}</a> ' for j in range(1, pages))
        (folder / name).write_text(f"<html><body><main><h1>Page {i}</h1><h2>Topic {i}</h2>"
                                   f"<p>Fact number {i} about the chain site.</p>{links}</main></body></html>")
    return folder


def test_cli_crawl_folder_has_no_delay_unless_asked(tmp_path: Path) -> None:
    site = _chain_site(tmp_path / "site", 30)
    args = ["crawl", str(site), "--no-progress", "--json"]
    # The explicit delay goes first: it also pays for loading the tokenizer, which would blur the other run.
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "a.jsonl"), "--delay", "0.05"])
    assert result.exit_code == 0, result.output
    spaced = json.loads(result.stdout)
    requests = len(spaced["pages"]) + 1  # + robots.txt
    assert len(spaced["pages"]) == 30
    assert spaced["duration_s"] >= 0.05 * (requests - 1)
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "b.jsonl")])
    assert result.exit_code == 0, result.output
    # The URL default (0.5 s between request starts) could not finish this many requests this fast.
    assert json.loads(result.stdout)["duration_s"] < CrawlConfig().delay_s * (requests - 1)


def test_crawl_folder_defaults_to_no_delay(tmp_path: Path) -> None:
    site = _chain_site(tmp_path / "site", 30)
    crawl_folder(site, tmp_path / "warm.jsonl", config=FAST, progress=False)  # loads the tokenizer first
    report = crawl_folder(site, tmp_path / "c.jsonl", progress=False)  # no config: the folder default
    assert len(report.pages) == 30
    assert report.duration_s < CrawlConfig().delay_s * len(report.pages)  # what the URL default would need


def test_cli_crawl_folder_public_base_gives_stable_urls(tmp_path: Path) -> None:
    site = _chain_site(tmp_path / "site", 3)
    args = ["crawl", str(site), "--no-progress", "--public-base", "https://www.example.edu/"]
    for name in ("a", "b"):  # two servers on two ephemeral ports, one fresh cache each
        result = runner.invoke(app, [*args, "--out", str(tmp_path / f"{name}.jsonl")])
        assert result.exit_code == 0, result.output
    urls = {r.url for r in read_records(tmp_path / "a.jsonl")}
    assert urls == {"https://www.example.edu/", "https://www.example.edu/p1.html", "https://www.example.edu/p2.html"}
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    report = json.loads((tmp_path / "a.crawl.json").read_text())
    assert report["start_url"] == "https://www.example.edu/"
    assert "127.0.0.1" not in (tmp_path / "a.crawl.json").read_text()
    bad = runner.invoke(app, [*args[:-1], "ftp://x", "--out", str(tmp_path / "c.jsonl")])
    assert bad.exit_code == 2 and "public base is not a valid http(s) URL" in bad.output
