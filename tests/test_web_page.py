"""The search page in headless Chromium (Debian's, driven by Playwright) against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_helpers import HOSTILE_PAGE, live_server, session_store
from sitetune.serve import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def base_url(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with (
        Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as searcher,
        live_server(create_app(searcher, model_name="base")) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"Debian's chromium is missing at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    try:
        yield page
    finally:
        context.close()


def test_question_shows_cited_answer_and_results(page: Any, base_url: str, tmp_path: Path) -> None:
    page.goto(base_url + "/")
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling a JS string needs.
    page.wait_for_selector("#page option:nth-child(2)", state="attached")
    page.fill("#q", "When is the application deadline?")
    page.click("#go")
    page.wait_for_selector("#hits li.hit")

    answer = page.inner_text("#answer-text")
    assert "[1]" in answer and "not found" not in answer.lower()
    cite = page.locator("#answer-text a.cite").first
    assert cite.get_attribute("href").startswith("https://www.cbs.dk/")
    assert cite.get_attribute("rel") == "noopener noreferrer"
    assert page.locator("#sources li").count() >= 1

    hits = page.locator("#hits li.hit")
    assert hits.count() == 5
    first_title = hits.first.locator("a.hit-title")
    assert first_title.inner_text().strip()
    assert first_title.get_attribute("href").startswith("https://")
    assert hits.first.locator(".hit-page").inner_text().strip()
    assert "sections found" in page.inner_text("#status")

    page.screenshot(path=str(tmp_path / "search-page.png"), full_page=True)
    assert (tmp_path / "search-page.png").stat().st_size > 10_000
    assert page.problems == []


def test_programme_filter_limits_results(page: Any, base_url: str) -> None:
    page.goto(base_url + "/")
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling a JS string needs.
    page.wait_for_selector("#page option:nth-child(2)", state="attached")
    page.select_option("#page", "Part-time master")
    page.fill("#q", "Can I switch between part-time and full-time?")
    page.press("#q", "Enter")
    page.wait_for_selector("#hits li.hit")
    pages = page.locator("#hits .hit-page").all_inner_texts()
    assert pages and set(pages) == {"Part-time master"}


def test_off_topic_question_says_not_found(page: Any, base_url: str) -> None:
    page.goto(base_url + "/")
    page.fill("#q", "What is the capital of Peru?")
    page.click("#go")
    page.wait_for_selector("#answer:not([hidden])")
    assert "Not found in the pages" in page.inner_text("#answer-text")
    assert page.locator("#answer-text a").count() == 0
    assert "closest sections" in page.inner_text("#answer-note")


def test_page_text_with_html_and_markdown_stays_inert(page: Any, base_url: str, tmp_path: Path) -> None:
    page.goto(base_url + "/")
    title = page.title()
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling a JS string needs.
    page.wait_for_selector("#page option:nth-child(2)", state="attached")
    page.select_option("#page", HOSTILE_PAGE)
    page.fill("#q", "When is the sailing club regatta?")
    page.click("#go")
    page.wait_for_selector("#hits li.hit")
    page.wait_for_timeout(300)  # give an injected handler the chance to fire if one had been created
    # The markup is visible as text and nothing of it became an element or ran.
    assert "<img src=x onerror=" in page.inner_text("#hits")
    assert "![tracker](https://evil.example/pixel.png)" in page.inner_text("#hits")
    assert page.locator("main img, main script:not([src]), #hits strong").count() == 0
    assert page.locator("a[href^='javascript:'], a[href*='evil.example']").count() == 0
    assert page.title() == title
    page.screenshot(path=str(tmp_path / "hostile-page.png"), full_page=True)


def test_blank_and_rejected_questions_show_a_message(page: Any, base_url: str) -> None:
    page.goto(base_url + "/")
    page.fill("#q", "   ")
    page.click("#go")
    assert page.inner_text("#status") == "Type a question first."
    page.evaluate("document.getElementById('q').removeAttribute('maxlength')")
    page.fill("#q", "x" * 1200)
    page.click("#go")
    page.wait_for_selector("#status.error:has-text('1000')")
    assert "body.question: must be at most 1000 characters" in page.inner_text("#status")
