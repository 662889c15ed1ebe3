"""``sitetune refresh`` on a real site served on 127.0.0.1, a real store and a live server reading it.

The tiny site (refresh_helpers) is crawled and indexed with the packaged model once per module; each test
refreshes its own copy, changes the site, breaks the site or the index, and reads what the store, the
store's refresh.json and a live server's /healthz and /metrics say.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from refresh_helpers import FAST, FAST_SITEMAPS, PAGES, set_routes, write_page, write_site
from serve_helpers import live_server
from sitetune.cli.main import app as cli
from sitetune.cli.refresh_cmd import refresh_schedule
from sitetune.config import ChunkingConfig, ServeConfig
from sitetune.crawl import crawl_folder
from sitetune.crawl import crawler as crawler_module
from sitetune.crawl.localsite import serve
from sitetune.index import EmbeddedStore, build_index
from sitetune.index import store as store_module
from sitetune.index.lease import LEASE_DIR
from sitetune.index.refreshstate import read_state
from sitetune.recordio import read_records
from sitetune.records import SectionRecord
from sitetune.refresh import RefreshError, RefreshOptions, run_refresh
from sitetune.search import Searcher
from sitetune.sectionize import sectionize_html
from sitetune.serve.app import create_app
from sitetune.serve.refresher import RefreshSchedule, RefreshScheduler
from sitetune.serve.reload import Follow, store_opener
from sitetune.siteconfig import load_site_config

QUERY = "tuition fee for students outside the EU"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, its corpus and page cache, and a store of it (generation 1): crawled and indexed once."""
    root = tmp_path_factory.mktemp("refresh")
    write_site(root / "site")
    crawl_folder(root / "site", root / "corpus.jsonl", config=FAST, progress=False)
    build_index(root / "corpus.jsonl", "base", root / "store", progress=False)
    return root


class Copy:
    """A test's own copy of :func:`built`."""

    def __init__(self, built: Path, root: Path) -> None:
        shutil.copytree(built, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LEASE_DIR, ".lock"))
        self.root, self.site, self.store, self.corpus = root, root / "site", root / "store", root / "corpus.jsonl"

    def options(self, **changes: Any) -> RefreshOptions:
        base = RefreshOptions(site=str(self.site), store=str(self.store), corpus=self.corpus, crawl=FAST_SITEMAPS,
                              progress=False)
        return replace(base, **changes)

    def current(self) -> str:
        return (self.store / "CURRENT").read_text().strip()


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Copy:
    return Copy(built, tmp_path / "copy")


@pytest.fixture
def server(copy: Copy) -> Iterator[str]:
    """A live server over the copy's store, polling CURRENT every 0.1 s."""
    app = create_app(Searcher.open(copy.store), ServeConfig(reload_poll_s=0.1),
                     follow=Follow(str(copy.store), store_opener(copy.store)))
    try:
        with live_server(app) as url:
            yield url
    finally:
        app.state.follower.close()


def _health(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/healthz", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def _search(url: str) -> list[tuple[str, str]]:
    response = httpx.get(f"{url}/search", params={"q": QUERY, "k": 3}, timeout=30)
    assert response.status_code == 200
    return [(hit["chunk_id"], hit["text"]) for hit in response.json()["results"]]


def _refreshes(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "sitetune_refresh_total"}


def test_an_unchanged_site_re_embeds_nothing_and_keeps_the_generation(copy: Copy) -> None:
    before = copy.current()
    report = run_refresh(copy.options())
    assert (report.embedded, report.published, report.fetched) == (0, False, 0)
    assert (report.new, report.changed, report.gone, report.unchanged) == (0, 0, 0, 4)
    assert report.generation == report.previous_generation == 1
    assert copy.current() == before
    state = read_state(copy.store)
    assert state is not None and state["last"]["outcome"] == "success" and state["successes"] == 1


def test_a_one_page_change_re_embeds_only_that_pages_changed_sections(copy: Copy, server: str) -> None:
    assert _refreshes(server) == {}
    _title, sections = PAGES["b.html"]
    write_page(copy.site, "b.html", {**sections, "Other students": "Students from outside the EU pay "
                                                                   "18,500 euros a year from next autumn."})
    report = run_refresh(copy.options())
    assert (report.changed, report.unchanged, report.new, report.gone) == (1, 3, 0, 0)
    assert (report.embedded, report.removed, report.published, report.generation) == (1, 1, True, 2)
    assert report.fetched == 1  # the other pages came back 304 from the page cache's conditional requests
    assert copy.current() == "gen-000002"
    manifest = EmbeddedStore(copy.store).read_manifest(2)
    assert manifest.count == report.sections
    # The running server switches by itself and says so; its metrics count the refresh.
    deadline = time.monotonic() + 20
    while _health(server)["generation"] != 2:
        assert time.monotonic() < deadline, "the server did not switch to generation 2"
        time.sleep(0.1)
    assert any("18,500 euros" in text for _, text in _search(server))
    health = _health(server)
    assert health["refresh"]["outcome"] == "success" and health["refresh"]["generation"] == 2
    assert health["refresh"]["error"] is None
    assert _refreshes(server) == {"success": 1.0}


def test_a_site_answering_500_fails_the_refresh_and_leaves_the_served_store_untouched(
        copy: Copy, server: str) -> None:
    before, results = copy.current(), _search(server)
    manifest = (copy.store / before / "manifest.json").read_bytes()

    class Broken(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serve(Broken) as url, pytest.raises(RefreshError, match="refresh failed while crawling") as caught:
        run_refresh(copy.options(site=url + "/"))
    assert caught.value.stage == "crawl"
    assert copy.current() == before
    assert (copy.store / before / "manifest.json").read_bytes() == manifest
    assert _search(server) == results
    health = _health(server)
    assert health["generation"] == 1
    assert health["refresh"]["outcome"] == "failure" and health["refresh"]["stage"] == "crawl"
    assert "no page of" in health["refresh"]["error"]
    assert _refreshes(server) == {"failure": 1.0}


def test_an_index_failure_leaves_current_and_results_as_they_were(
        copy: Copy, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before, results = copy.current(), _search(server)
    write_page(copy.site, "c.html", {"Halls": "The harbour halls close for renovation next year."})

    def disk_full(step: str) -> None:
        if step == "synced":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "write_step_hook", disk_full)
    with pytest.raises(RefreshError, match="refresh failed while indexing") as caught:
        run_refresh(copy.options())
    assert caught.value.stage == "index"
    assert copy.current() == before
    assert _search(server) == results
    refresh = _health(server)["refresh"]
    assert refresh["outcome"] == "failure" and refresh["stage"] == "index"
    assert "No space left on device" in refresh["error"]
    monkeypatch.setattr(store_module, "write_step_hook", None)
    assert run_refresh(copy.options()).published  # the next refresh carries on
    assert copy.current() != before


def test_a_page_failing_with_503_keeps_its_sections_and_a_404_drops_them(copy: Copy) -> None:
    set_routes(copy.site, {"/a.html": {"status": 503}, "/c.html": {"status": 404}})
    report = run_refresh(copy.options())
    assert (report.kept, report.gone) == (1, 1)
    pages = {json.loads(line)["url"].rsplit("/", 1)[-1] for line in copy.corpus.read_text().splitlines()}
    assert "a.html" in pages and "c.html" not in pages


def test_drift_past_the_threshold_marks_the_model_stale_in_the_log_and_healthz(
        copy: Copy, server: str, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.html", "c.html"):
        write_page(copy.site, name, {"Notice": f"The {name} page was rewritten for the new academic year."})
    report = run_refresh(copy.options(stale_threshold=0.3))
    assert report.drift is not None and report.drift["stale"] is True
    assert float(str(report.drift["changed"])) > 0.3
    assert "the model is stale" in capsys.readouterr().err
    health = _health(server)
    assert health["model_stale"] is True and health["corpus_changed_since_training"] > 0.3


def test_the_cli_prints_json_and_a_failure_exits_2_naming_the_stage(copy: Copy) -> None:
    runner = CliRunner()
    args = ["refresh", str(copy.site), "--store", str(copy.store), "--corpus", str(copy.corpus), "--no-progress"]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("fetched", "unchanged_on_server", "new", "gone", "embedded", "generation", "seconds"):
        assert key in data
    assert data["embedded"] == 0 and data["sitemaps"] == {"https://www.harbour-test.example/sitemap.xml": "http-404"}
    failed = runner.invoke(cli, ["refresh", str(copy.root / "missing-site"), "--store", str(copy.store),
                                 "--no-progress"])
    assert failed.exit_code == 2
    assert "error: refresh failed while crawling" in failed.output


def test_serve_refuses_a_bad_refresh_schedule_before_loading_anything(copy: Copy) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["serve", "--store", str(copy.store), "--refresh-every", "daily"])
    assert bad.exit_code == 2 and "--refresh-every: 'daily' is not a duration" in bad.output
    alone = runner.invoke(cli, ["serve", "--store", str(copy.store), "--refresh-every", "24h"])
    assert alone.exit_code == 2 and "needs --refresh-site" in alone.output
    typo = runner.invoke(cli, ["serve", "--store", str(copy.store), "--refresh-every", "24h", "--refresh-site",
                               str(copy.site), "--refresh-args", "--max-pagez 3"])
    assert typo.exit_code == 2 and "--refresh-args: No such option: --max-pagez" in typo.output


def test_the_scheduler_runs_refresh_in_a_child_and_records_a_killed_one(copy: Copy, server: str) -> None:
    write_page(copy.site, "a.html", {"Entry requirements": "Applicants need a bachelor's degree in any field."})
    command = (sys.executable, "-m", "sitetune.cli.main", "refresh", str(copy.site), "--store", str(copy.store),
               "--corpus", str(copy.corpus), "--no-progress")
    assert RefreshScheduler(RefreshSchedule(3600, command, str(copy.store))).run_once() == 0
    assert copy.current() == "gen-000002"
    assert _health(server)["refresh"]["outcome"] == "success"
    killed = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert RefreshScheduler(RefreshSchedule(3600, killed, str(copy.store))).run_once() == -9
    refresh = _health(server)["refresh"]
    assert refresh["outcome"] == "failure" and "exited with code -9" in refresh["error"]
    assert copy.current() == "gen-000002"
    assert _refreshes(server) == {"success": 1.0, "failure": 1.0}


def _count_sectionized(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the crawler sectionizes from now on (the real sectionizer still does the work)."""
    seen: list[str] = []

    def counted(html: str, url: str, config: ChunkingConfig) -> list[SectionRecord]:
        seen.append(url.rsplit("/", 1)[-1])
        return sectionize_html(html, url, config)

    monkeypatch.setattr(crawler_module, "sectionize_html", counted)
    return seen


def test_a_refresh_sectionizes_only_changed_pages_and_writes_what_a_fresh_crawl_would(
        copy: Copy, monkeypatch: pytest.MonkeyPatch) -> None:
    sectionized = _count_sectionized(monkeypatch)
    assert run_refresh(copy.options()).published is False
    assert sectionized == []  # every page came back 304: its sections are the memo's, no tokenizer needed
    write_page(copy.site, "b.html", {"Fees": "From next autumn every student pays 2,000 euros a semester."})
    report = run_refresh(copy.options())
    assert sectionized == ["b.html"] and (report.changed, report.unchanged) == (1, 3)
    fresh = copy.root / "fresh" / "corpus.jsonl"  # the new site crawled from scratch: an empty page cache
    crawl_folder(copy.site, fresh, config=FAST_SITEMAPS, progress=False)
    assert read_records(copy.corpus) == read_records(fresh)
    # A change of the chunking settings (or of the sectionizer's code) is a miss for every page.
    sectionized.clear()
    small = ChunkingConfig(max_tokens=24)
    cut = crawl_folder(copy.site, copy.root / "small.jsonl", config=FAST, cache_dir=copy.root / "corpus.cache",
                       chunking=small, progress=False)
    assert sorted(sectionized) == ["", "a.html", "b.html", "c.html"]
    scratch = crawl_folder(copy.site, copy.root / "small-fresh.jsonl", config=FAST, chunking=small, progress=False)
    assert read_records(copy.root / "small.jsonl") == read_records(copy.root / "small-fresh.jsonl")
    assert cut.records == scratch.records > report.sections
    # A damaged memo entry is a miss, never a wrong page.
    for entry in (copy.root / "corpus.cache").glob("*.sections.json"):
        entry.write_text('{"stamp": 1, "records": [["x"]]}', encoding="utf-8")
    sectionized.clear()
    assert run_refresh(copy.options()).published is False  # the same sections as the last refresh
    assert len(sectionized) == 4


def test_an_unchanged_refresh_loads_neither_the_tokenizer_nor_torch(copy: Copy) -> None:
    script = (
        "import sys\n"
        "from sitetune.refresh import RefreshOptions, run_refresh\n"
        f"report = run_refresh(RefreshOptions(site={str(copy.site)!r}, store={str(copy.store)!r}, "
        f"corpus=__import__('pathlib').Path({str(copy.corpus)!r}), progress=False), log=lambda line: None)\n"
        "print(report.unchanged, report.published, 'transformers' in sys.modules, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "False", "False", "False"]


def _site_toml(copy: Copy, crawl: str) -> Path:
    path = copy.root / "site.toml"
    path.write_text(f'[site]\nstart = "{copy.site}"\n\n[crawl]\n{crawl}\n\n[serve]\nstore = "{copy.store}"\n',
                    encoding="utf-8")
    return path


def test_refresh_reads_the_site_and_store_from_a_config_file_and_a_flag_overrides_it(copy: Copy) -> None:
    runner = CliRunner()
    path = _site_toml(copy, "max_pages = 2")  # the home page and one more: the rest keep their sections
    args = ["refresh", "--config", str(path), "--corpus", str(copy.corpus), "--no-progress", "--json"]
    by_file = runner.invoke(cli, args)
    assert by_file.exit_code == 0, by_file.output
    data = json.loads(by_file.stdout)
    assert (data["store"], data["pages"], data["kept"]) == (str(copy.store), 4, 2)
    by_flag = runner.invoke(cli, [*args, "--max-pages", "50"])
    assert by_flag.exit_code == 0, by_flag.output
    assert (json.loads(by_flag.stdout)["kept"], json.loads(by_flag.stdout)["unchanged"]) == (0, 4)


def test_serve_config_schedules_refresh_with_the_file_and_the_child_reads_it(copy: Copy) -> None:
    path = _site_toml(copy, 'max_pages = 2\nrefresh_every = "6h"')
    schedule = refresh_schedule(str(copy.store), None, None, f"--corpus {copy.corpus}", load_site_config(path))
    assert schedule is not None and schedule.every_s == 6 * 3600
    assert schedule.command[3:] == ("refresh", str(copy.site), "--store", str(copy.store), "--config",
                                    str(path.resolve()), "--no-progress", "--corpus", str(copy.corpus))
    assert RefreshScheduler(schedule).run_once() == 0
    state = read_state(copy.store)
    assert state is not None and state["last"]["outcome"] == "success"
    assert state["last"]["kept"] == 2  # the child crawled with the file's max_pages
    # A file that names a corpus file rather than a site cannot schedule a re-crawl: serve stops at once.
    corpus_only = copy.root / "corpus-only.toml"
    corpus_only.write_text(f'[site]\ncorpus = "{copy.corpus}"\n[crawl]\nrefresh_every = "24h"\n'
                           f'[serve]\nstore = "{copy.store}"\n', encoding="utf-8")
    refused = CliRunner().invoke(cli, ["serve", "--config", str(corpus_only)])
    assert refused.exit_code == 2 and "the refresh schedule needs --refresh-site" in refused.output
