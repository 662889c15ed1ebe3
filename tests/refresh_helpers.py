"""A tiny site on disk for the sitemap and refresh tests, served for real by sitetune.crawl.localsite."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sitetune.config import CrawlConfig

PUBLIC = "https://www.harbour-test.example"
#: No politeness delay, quick retries: the only server is the test's own on 127.0.0.1.
FAST = CrawlConfig(delay_s=0.0, backoff_s=0.02, max_backoff_s=0.05, timeout_s=5.0, retries=1)
FAST_SITEMAPS = replace(FAST, sitemaps=True)


def _page(title: str, sections: dict[str, str], links: tuple[str, ...] = ()) -> str:
    body = "".join(f"<h2>{name}</h2><p>{text}</p>" for name, text in sections.items())
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{body}"
            f"<ul>{anchors}</ul></body></html>")


#: Each page's sections; a test edits one and counts what is re-embedded.
PAGES: dict[str, tuple[str, dict[str, str]]] = {
    "a.html": ("Admission", {
        "Entry requirements": "Applicants need a bachelor's degree in business, economics or engineering.",
        "English test": "An IELTS score of 7.0 or a TOEFL score of 100 is required of every applicant.",
    }),
    "b.html": ("Tuition fees", {
        "EU students": "Students from the EU pay no tuition fee for the two-year master programme.",
        "Other students": "Students from outside the EU pay 15,000 euros a year, due before the semester.",
    }),
    "c.html": ("Housing", {
        "Halls": "The harbour halls offer 300 furnished rooms a short walk from the campus.",
        "Private rooms": "The housing office lists private rooms and helps new students sign a lease.",
    }),
}


def write_page(folder: Path, name: str, sections: dict[str, str] | None = None) -> None:
    """Write page ``name`` of :data:`PAGES` (with ``sections`` instead of its own, if given)."""
    title, own = PAGES[name]
    (folder / name).write_text(_page(title, sections or own), encoding="utf-8")


def write_site(folder: Path, *, robots: str = "User-agent: *\nDisallow: /private/\n") -> Path:
    """The site: a home page linking to every page of :data:`PAGES`, robots.txt and a public base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    home = {"Welcome": "The harbour test school teaches three graduate programmes on its waterfront campus."}
    (folder / "index.html").write_text(_page("Harbour test school", home, tuple(f"/{n}" for n in PAGES)),
                                       encoding="utf-8")
    for name in PAGES:
        write_page(folder, name)
    (folder / "robots.txt").write_text(robots, encoding="utf-8")
    (folder / "_site.json").write_text(json.dumps({"public_base": PUBLIC + "/"}), encoding="utf-8")
    return folder


def set_routes(folder: Path, routes: dict[str, dict[str, object]]) -> None:
    """Give the site special routes (see sitetune.crawl.localsite), keeping its public base."""
    (folder / "_site.json").write_text(json.dumps({"public_base": PUBLIC + "/", "routes": routes}), encoding="utf-8")
