"""Dead links in the page cache: a link that answered 404/410 is not asked for again within the TTL.

The tiny site (refresh_helpers) is served for real on 127.0.0.1 by the crawler's own handler, whose hit
counter says which paths a crawl requested.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refresh_helpers import FAST, FAST_SITEMAPS, PUBLIC, set_routes, write_site
from sitetune.cli.main import app
from sitetune.config import CrawlConfig
from sitetune.crawl import crawl_folder, crawl_site
from sitetune.crawl.localsite import SiteHandler, load_site_spec, serve
from sitetune.crawl.report import CrawlReport
from sitetune.errors import InputError
from sitetune.recordio import read_records
from sitetune.siteconfig import load_site_config

DEAD = ("/gone.html", "/retired.html")  # linked from the home page: a missing file (404) and a 410 route


def _site(folder: Path) -> Path:
    """The tiny site, its home page also linking to a missing page and to one that answers 410."""
    write_site(folder)
    home = folder / "index.html"
    extra = "".join(f'<li><a href="{path}">{path}</a></li>' for path in DEAD)
    home.write_text(home.read_text(encoding="utf-8").replace("</ul>", extra + "</ul>"), encoding="utf-8")
    set_routes(folder, {"/retired.html": {"status": 410}})
    return folder


@contextlib.contextmanager
def _served(folder: Path) -> Iterator[tuple[str, Counter[str]]]:
    """Serve ``folder``; yields its base URL and the per-path request counter the handler keeps."""
    hits: Counter[str] = Counter()
    with serve(SiteHandler, folder=folder.resolve(), spec=load_site_spec(folder), hits=hits,
               lock=threading.Lock()) as base:
        yield base, hits


def _crawl(base: str, hits: Counter[str], out: Path, cache: Path, config: CrawlConfig) -> CrawlReport:
    """One crawl of the served site with ``cache``; ``hits`` counts only this crawl's requests."""
    hits.clear()
    return crawl_site(base + "/", out, config=config, cache_dir=cache, progress=False, public_base=PUBLIC + "/")


def _dead_hits(hits: Counter[str]) -> dict[str, int]:
    return {path: hits[path] for path in DEAD}


def test_a_dead_link_is_not_requested_again_and_still_counts_as_dead(tmp_path: Path) -> None:
    site, cache = _site(tmp_path / "site"), tmp_path / "cache"
    with _served(site) as (base, hits):
        first = _crawl(base, hits, tmp_path / "first.jsonl", cache, FAST)
        assert _dead_hits(hits) == {"/gone.html": 1, "/retired.html": 1}
        second = _crawl(base, hits, tmp_path / "second.jsonl", cache, FAST)
        assert _dead_hits(hits) == {"/gone.html": 0, "/retired.html": 0}
        assert hits["/a.html"] == 1  # the live pages are still revalidated
    assert first.dead_not_rechecked == 0 and second.dead_not_rechecked == 2
    # Reported as the same dead links a fresh request finds, under the same reasons.
    assert second.skip_reasons() == first.skip_reasons()
    assert {s.url: s.reason for s in second.skipped if s.url.endswith(DEAD)} == {
        f"{PUBLIC}/gone.html": "http-404", f"{PUBLIC}/retired.html": "http-410"}
    assert read_records(tmp_path / "second.jsonl") == read_records(tmp_path / "first.jsonl")
    saved = json.loads((tmp_path / "second.crawl.json").read_text())
    assert saved["dead_not_rechecked"] == 2 and saved["skip_reasons"]["http-404"] == 1


def test_dead_links_are_requested_again_with_ttl_0_or_once_it_has_passed(tmp_path: Path) -> None:
    site, cache = _site(tmp_path / "site"), tmp_path / "cache"
    with _served(site) as (base, hits):
        _crawl(base, hits, tmp_path / "a.jsonl", cache, FAST)
        always = _crawl(base, hits, tmp_path / "b.jsonl", cache, replace(FAST, dead_link_ttl_s=0))
        assert _dead_hits(hits) == {"/gone.html": 1, "/retired.html": 1} and always.dead_not_rechecked == 0
        time.sleep(0.3)
        expired = _crawl(base, hits, tmp_path / "c.jsonl", cache, replace(FAST, dead_link_ttl_s=0.2))
        assert _dead_hits(hits) == {"/gone.html": 1, "/retired.html": 1} and expired.dead_not_rechecked == 0
        # The page comes back: a check finds it, and the cache forgets it was dead.
        (site / "gone.html").write_text("<html><body><h1>Back</h1><h2>Returned</h2><p>The page is back "
                                        "online with its old address.</p></body></html>", encoding="utf-8")
        revived = _crawl(base, hits, tmp_path / "d.jsonl", cache, replace(FAST, dead_link_ttl_s=0))
        assert f"{PUBLIC}/gone.html" in {p.url for p in revived.pages}
        later = _crawl(base, hits, tmp_path / "e.jsonl", cache, FAST)
        assert _dead_hits(hits) == {"/gone.html": 1, "/retired.html": 0} and later.dead_not_rechecked == 1
    assert f"{PUBLIC}/gone.html" in {p.url for p in later.pages}
    assert read_records(tmp_path / "c.jsonl") == read_records(tmp_path / "a.jsonl")


def test_a_dead_url_the_sitemap_lists_is_always_requested(tmp_path: Path) -> None:
    site, cache = _site(tmp_path / "site"), tmp_path / "cache"
    rows = (f"<url><loc>{PUBLIC}/gone.html</loc></url>"
            f"<url><loc>{PUBLIC}/retired.html</loc><lastmod>2020-01-01</lastmod></url>")
    urlset = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'
    (site / "sitemap.xml").write_text(urlset, encoding="utf-8")
    home = site / "index.html"
    home.write_text(home.read_text(encoding="utf-8").replace("</ul>", '<li><a href="/old.html">old</a></li></ul>'),
                    encoding="utf-8")
    with _served(site) as (base, hits):
        first = _crawl(base, hits, tmp_path / "a.jsonl", cache, FAST_SITEMAPS)
        second = _crawl(base, hits, tmp_path / "b.jsonl", cache, FAST_SITEMAPS)
        assert _dead_hits(hits) == {"/gone.html": 1, "/retired.html": 1}
        assert hits["/old.html"] == 0  # only linked: not asked again
    assert second.dead_not_rechecked == 1 and second.skip_reasons() == first.skip_reasons()
    assert read_records(tmp_path / "b.jsonl") == read_records(tmp_path / "a.jsonl")


def test_cli_dead_link_ttl_option(tmp_path: Path) -> None:
    site = _site(tmp_path / "site")
    args = ["crawl", str(site), "--no-progress", "--cache", str(tmp_path / "cache")]
    runs: list[int] = []
    for extra in ([], ["--dead-link-ttl", "0"], []):
        result = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / f"{len(runs)}.jsonl"), *extra])
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout)["dead_not_rechecked"])
    assert runs == [0, 0, 2]
    text = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "t.jsonl")])
    assert text.exit_code == 0 and "2 dead links not re-checked" in text.output
    assert CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x.jsonl"), "--dead-link-ttl", "-1"]).exit_code == 2


def test_a_folder_crawl_uses_the_same_cache_rules(tmp_path: Path) -> None:
    site, cache = _site(tmp_path / "site"), tmp_path / "cache"
    crawl_folder(site, tmp_path / "a.jsonl", config=FAST, cache_dir=cache, progress=False)
    again = crawl_folder(site, tmp_path / "b.jsonl", config=FAST, cache_dir=cache, progress=False)
    assert again.dead_not_rechecked == 2
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_site_toml_sets_the_ttl_and_refuses_a_negative_one(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[site]\nstart = "sample"\n\n[crawl]\ndead_link_ttl_s = 0\n', encoding="utf-8")
    crawl = load_site_config(good).job.crawl
    assert crawl is not None and crawl.dead_link_ttl_s == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nstart = "sample"\n\n[crawl]\ndead_link_ttl_s = -1\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.toml:5: \[crawl\] dead_link_ttl_s: must be 0 or more"):
        load_site_config(bad)
