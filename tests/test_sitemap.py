"""Sitemaps: parsing (urlset, index, lastmod, gzip, hostile XML) and a crawl that reads them from a real site."""

from __future__ import annotations

import gzip
import logging
import os
import time
from pathlib import Path

import pytest

from refresh_helpers import FAST, FAST_SITEMAPS, PUBLIC, write_page, write_site
from sitetune.crawl import crawl_folder
from sitetune.crawl.sitemap import SitemapError, parse_lastmod, parse_sitemap
from sitetune.recordio import read_records

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def _urlset(*entries: tuple[str, str | None]) -> str:
    rows = "".join(f"<url><loc>{loc}</loc>{f'<lastmod>{mod}</lastmod>' if mod else ''}</url>"
                   for loc, mod in entries)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{rows}</urlset>'


def _index(*locs: str) -> str:
    rows = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {NS}>{rows}</sitemapindex>'


def test_a_urlset_gives_each_url_with_its_lastmod() -> None:
    sitemap = parse_sitemap(_urlset(("https://x.example/a", "2024-05-01"),
                                    ("https://x.example/b", "2024-05-01T10:00:00+02:00"),
                                    ("https://x.example/c", None), ("https://x.example/d", "yesterday")).encode())
    assert not sitemap.index
    assert [e.loc for e in sitemap.entries] == [f"https://x.example/{p}" for p in "abcd"]
    a, b, c, d = (e.lastmod for e in sitemap.entries)
    # A date alone is the end of that day (UTC), so a page changed later that day is not taken as older.
    assert a == parse_lastmod("2024-05-02T00:00:00Z")
    assert b == parse_lastmod("2024-05-01T08:00:00Z")
    assert c is None and d is None


def test_an_index_lists_sitemaps_and_gzip_is_read() -> None:
    data = gzip.compress(_index("https://x.example/s1.xml", "https://x.example/s2.xml.gz").encode())
    sitemap = parse_sitemap(data)
    assert sitemap.index
    assert [e.loc for e in sitemap.entries] == ["https://x.example/s1.xml", "https://x.example/s2.xml.gz"]


@pytest.mark.parametrize("data, message", [
    (b"<urlset><url><loc>https://x.example/a</loc></url>", "not well-formed"),
    (b"<html><body>Not found</body></html>", "root element is <html>"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     b"<urlset><url><loc>&lol2;</loc></url></urlset>", "DOCTYPE"),
    (b'<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "http://127.0.0.1:1/evil.dtd"><urlset/>', "DOCTYPE"),
    (b"<urlset><url><loc>&undefined;</loc></url></urlset>", "not well-formed"),
    (gzip.compress(b"<urlset>" + b" " * 3000 + b"</urlset>"), "inflates past"),
])
def test_hostile_or_broken_xml_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(SitemapError, match=message):
        parse_sitemap(data, max_bytes=2000)


def test_entries_past_the_cap_are_counted_not_kept() -> None:
    sitemap = parse_sitemap(_urlset(*[(f"https://x.example/{i}", None) for i in range(5)]).encode(), max_urls=3)
    assert len(sitemap.entries) == 3 and sitemap.truncated == 2


def _sitemap_site(folder: Path) -> Path:
    """The tiny site with an orphan page only its sitemaps list, reached through robots.txt and an index."""
    write_site(folder, robots=f"User-agent: *\nDisallow: /private/\nSitemap: {PUBLIC}/maps/index.xml\n")
    (folder / "orphan.html").write_text(
        "<html><head><title>Scholarships</title></head><body><h1>Scholarships</h1><h2>Merit awards</h2>"
        "<p>Ten merit scholarships cover the full tuition fee of the first year.</p></body></html>", encoding="utf-8")
    (folder / "maps").mkdir()
    (folder / "maps" / "index.xml").write_text(
        _index(f"{PUBLIC}/maps/pages.xml", f"{PUBLIC}/maps/broken.xml", "https://elsewhere.example/maps.xml"),
        encoding="utf-8")
    (folder / "maps" / "pages.xml").write_text(_urlset(
        (f"{PUBLIC}/orphan.html", None), (f"{PUBLIC}/a.html", "2020-01-01"),
        (f"{PUBLIC}/private/staff.html", None), ("https://elsewhere.example/page.html", None)), encoding="utf-8")
    (folder / "maps" / "broken.xml").write_text("<urlset><url><loc>oops</url>", encoding="utf-8")
    return folder


def test_a_crawl_with_sitemaps_finds_pages_only_they_list_and_names_a_bad_sitemap(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = _sitemap_site(tmp_path / "site")
    plain = crawl_folder(site, tmp_path / "plain.jsonl", config=FAST, progress=False)
    assert f"{PUBLIC}/orphan.html" not in {p.final_url for p in plain.pages}
    with caplog.at_level(logging.WARNING, logger="sitetune.crawl.sitemap"):
        report = crawl_folder(site, tmp_path / "mapped.jsonl", config=FAST_SITEMAPS, progress=False)
    pages = {p.final_url for p in report.pages}
    assert f"{PUBLIC}/orphan.html" in pages
    assert {r.page_name for r in read_records(tmp_path / "mapped.jsonl")} >= {"Scholarships", "Admission"}
    assert f"{PUBLIC}/private/staff.html" not in pages  # listed, but robots.txt still rules
    assert report.sitemaps[f"{PUBLIC}/maps/index.xml"] == "index of 3 sitemaps"
    assert report.sitemaps[f"{PUBLIC}/maps/pages.xml"] == "4 URLs"
    assert "not well-formed" in report.sitemaps[f"{PUBLIC}/maps/broken.xml"]
    assert report.sitemaps["https://elsewhere.example/maps.xml"] == "not read: not on the crawled site"
    assert any(f"{PUBLIC}/maps/broken.xml" in r.getMessage() for r in caplog.records)


def test_without_a_robots_line_the_default_sitemap_is_read(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    (site / "orphan.html").write_text("<html><body><h1>Orphan</h1><h2>Only listed</h2><p>This page is listed "
                                      "by the sitemap and linked from nowhere.</p></body></html>", encoding="utf-8")
    (site / "sitemap.xml").write_text(_urlset((f"{PUBLIC}/orphan.html", None)), encoding="utf-8")
    report = crawl_folder(site, tmp_path / "c.jsonl", config=FAST_SITEMAPS, progress=False)
    assert report.sitemaps == {f"{PUBLIC}/sitemap.xml": "1 URLs"}
    assert f"{PUBLIC}/orphan.html" in {p.final_url for p in report.pages}


def test_a_page_whose_lastmod_is_older_than_the_cached_copy_is_not_requested(tmp_path: Path) -> None:
    site = _sitemap_site(tmp_path / "site")
    out, cache = tmp_path / "c.jsonl", tmp_path / "cache"
    first = crawl_folder(site, out, config=FAST_SITEMAPS, cache_dir=cache, progress=False)
    assert first.sitemap_unchanged == 0
    # The page changes, but the sitemap still says 2020: the cached copy is used without asking the server.
    write_page(site, "a.html", {"Entry requirements": "Applicants now need a master's degree in anything."})
    second = crawl_folder(site, out, config=FAST_SITEMAPS, cache_dir=cache, progress=False)
    assert second.sitemap_unchanged == 1
    texts = {r.text for r in read_records(out)}
    assert not any("master's degree in anything" in t for t in texts)
    # Once the sitemap says it changed, it is fetched (a conditional request, which the new ETag fails).
    pages_xml = site / "maps" / "pages.xml"
    pages_xml.write_text(pages_xml.read_text().replace("2020-01-01", time.strftime("%Y-%m-%d")), encoding="utf-8")
    os.utime(site / "a.html")
    third = crawl_folder(site, out, config=FAST_SITEMAPS, cache_dir=cache, progress=False)
    assert third.sitemap_unchanged == 0
    assert any("master's degree in anything" in r.text for r in read_records(out))
