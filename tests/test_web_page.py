"""The search page in headless Chromium (Debian's, driven by Playwright) against a live server.

Two servers: the CBS slice store (long page names, hostile text) and the bundled sample site, crawled
from its own local server so that citations link to pages Chromium can open (deep links are checked
there). Screenshots at 390 and 1280 px go to ``$SITETUNE_TEST_ARTIFACTS`` when set (kept after the run),
else to pytest's temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from serve_helpers import HOSTILE_PAGE, chromium, live_server, open_page, session_store
from sitetune.records import SectionRecord
from sitetune.serve import create_app
from sitetune.serve.deeplinks import opening_link, quote_link
from sitetune.serve.querylog import QueryLog

#: Where a text fragment may leave the passage: Chromium centres the match in the viewport.
PHONE = {"width": 390, "height": 700}
DESKTOP = {"width": 1280, "height": 800}
# Finds the first text node holding ``words`` (whitespace and case folded) and reports where it is drawn.
# The sample site's pages have no CSP, so evaluating a script there is allowed.
WHERE_IS = """(words) => {
  const norm = (s) => s.replace(/\\s+/g, " ").trim().toLowerCase();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (norm(node.textContent).includes(norm(words))) {
      const range = document.createRange();
      range.selectNodeContents(node);
      const box = range.getBoundingClientRect();
      return {found: true, top: box.top, bottom: box.bottom, viewport: window.innerHeight, scrollY: window.scrollY};
    }
  }
  return {found: false, scrollY: window.scrollY};
}"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots and the report: kept under $SITETUNE_TEST_ARTIFACTS when set."""
    chosen = os.environ.get("SITETUNE_TEST_ARTIFACTS")
    folder = Path(chosen) / "web_page" if chosen else tmp_path_factory.mktemp("web-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def base_url(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with (
        Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as searcher,
        live_server(create_app(searcher, model_name="base")) as url,
    ):
        yield url


@dataclasses.dataclass
class SampleSite:
    """The sample site served on 127.0.0.1, its crawled records (URLs on that server) and their store."""

    site: str
    records: list[SectionRecord]
    store: Path

    def record(self, page_name: str, section_title: str) -> SectionRecord:
        return next(r for r in self.records if r.page_name == page_name and r.section_title == section_title)


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleSite]:
    from sitetune.crawl import FOLDER_CRAWL, crawl_site, sample_site_dir
    from sitetune.crawl.localsite import serve_site
    from sitetune.index.build import build_index
    from sitetune.recordio import read_records

    work = tmp_path_factory.mktemp("sample-site")
    config = dataclasses.replace(FOLDER_CRAWL, backoff_s=0.05, max_backoff_s=0.1, timeout_s=5.0)
    with serve_site(sample_site_dir()) as site:
        # The crawler runs its own asyncio loop; Playwright's sync API may hold one in this thread already.
        errors: list[BaseException] = []

        def crawl() -> None:
            try:
                crawl_site(site + "/", work / "corpus.jsonl", config=config, progress=False)
            except BaseException as exc:  # re-raised in the test thread
                errors.append(exc)

        worker = threading.Thread(target=crawl)
        worker.start()
        worker.join(120)
        assert not errors and not worker.is_alive(), errors
        build_index(work / "corpus.jsonl", "base", work / "store", progress=False)
        yield SampleSite(site, read_records(work / "corpus.jsonl"), work / "store")


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sample-log") / "queries.jsonl"


@pytest.fixture(scope="module")
def sample_url(sample_site: SampleSite, sample_log: Path, base_encoder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with (
        Searcher.open(sample_site.store, encoder=base_encoder) as searcher,
        live_server(create_app(searcher, model_name="base", query_log=QueryLog(sample_log))) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    page = open_page(browser, {"width": 1100, "height": 1400})
    try:
        yield page
    finally:
        page.context.close()


def _ask(page: Any, url: str, question: str, *, wait_for: str = "#hits li.hit") -> None:
    page.goto(url + "/")
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling a JS string needs.
    page.wait_for_selector("#page option:nth-child(2)", state="attached")
    page.fill("#q", question)
    page.click("#go")
    page.wait_for_selector(wait_for)


def _words(text: str, *, bullets: bool = True) -> str:
    """``text`` with whitespace collapsed (and without list bullets unless ``bullets``)."""
    return " ".join(w for w in text.split() if bullets or w not in {"-", "•", "–", "*"})


def _where(page: Any, words: str) -> dict[str, Any]:
    """Where the text holding ``words`` is drawn, after the page had the chance to scroll to a fragment."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # No scroll within the wait is not an error here: the caller's assertions say what was expected.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function("window.scrollY > 0", timeout=3000)
    found: dict[str, Any] = page.evaluate(WHERE_IS, words)
    return found


def _in_view(where: dict[str, Any]) -> bool:
    return bool(where["found"]) and where["top"] >= 0 and where["bottom"] <= where["viewport"]


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
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling a JS string needs.
    # The title is the site's name once /site has answered (its examples are drawn in the same step).
    page.wait_for_selector("#examples li", state="attached")
    title = page.title()
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
    assert page.locator("a[href^='javascript:']").count() == 0
    # No link leads to the attacker's host (its URL may appear, percent-encoded, in a text fragment of ours).
    hosts = {urlsplit(a.get_attribute("href")).hostname for a in page.locator("main a[href]").all()}
    assert hosts and "evil.example" not in hosts
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
    page.wait_for_selector("#status.error:has-text('--max-query-chars')")
    assert "body.question: must be at most 300 characters, not 1200" in page.inner_text("#status")


# --- Deep links: text fragments open the source page at the quoted passage -------------------------------

SUPPLY_CHAIN = "MSc in Supply Chain Management"
FRAGMENT_CASES = {
    # A sentence with a hyphen and commas, in the middle of a long paragraph.
    "sentence": (
        "Programme structure (Part 2)",
        "Grading follows the local 12-point scale, and the pass mark is 02.",
        "the pass mark is 02",
    ),
    # A list: start and end terms in different blocks (the intro paragraph and the last list item).
    "list": ("English language requirements", "One of the following is accepted:", "at least 185"),
    # A table row whose first cell also names the site in the page header: the prefix pins the row.
    "table row": (
        "Entry requirements",
        "Harbour School of Business: BSc in International Shipping and Trade",
        "BSc in International Shipping and Trade",
    ),
}


@pytest.mark.parametrize("case", sorted(FRAGMENT_CASES))
def test_text_fragment_scrolls_to_the_quoted_passage(browser: Any, sample_site: SampleSite, case: str) -> None:
    title, passage_start, probe = FRAGMENT_CASES[case]
    record = sample_site.record(SUPPLY_CHAIN, title)
    start = record.text.index(passage_start)
    end = record.text.index(probe) + len(probe) if probe not in passage_start else start + len(passage_start)
    link = quote_link(record.url, record.text, [(start, end)])
    assert link.startswith(record.url + "#:~:text=")
    page = open_page(browser, PHONE)
    try:
        page.goto(record.url)
        before = page.evaluate(WHERE_IS, probe)
        assert before["found"] and not _in_view(before), "the passage must start below the fold for this test"
        page.goto(link)
        assert page.evaluate("'fragmentDirective' in document")
        after = _where(page, probe)
        assert after["scrollY"] > 0 and _in_view(after), (link, after)
    finally:
        page.context.close()


def test_result_link_scrolls_to_the_sections_opening_words(browser: Any, sample_site: SampleSite) -> None:
    record = sample_site.record(SUPPLY_CHAIN, "After you apply")
    page = open_page(browser, PHONE)
    try:
        page.goto(opening_link(record.url, record.text, record.section_title))
        after = _where(page, "You receive a receipt by e-mail")
        assert after["scrollY"] > 0 and _in_view(after), after
    finally:
        page.context.close()


def test_cited_link_opens_the_source_page_at_the_quote(browser: Any, sample_url: str) -> None:
    page = open_page(browser, DESKTOP)
    try:
        _ask(page, sample_url, "When are admission letters sent?")
        cite = page.locator("#answer-text a.cite").first
        href = cite.get_attribute("href")
        assert href.startswith(sample_url.rsplit(":", 1)[0]) and "#:~:text=" in href
        # The sentence the answer quotes is highlighted in its section; that is what the link points at.
        quote = _words(page.locator("#hits li.cited mark").first.inner_text(), bullets=False)
        assert quote and quote in _words(page.inner_text("#answer-text"), bullets=False)
        with page.context.expect_page() as opened:
            cite.click()
        source = opened.value
        source.wait_for_load_state()
        body = _words(source.inner_text("body"))
        assert quote.lower() in body.lower()
        where = _where(source, " ".join(quote.split()[:5]))
        assert _in_view(where), (href, where)
        assert page.problems == []
    finally:
        page.context.close()


# --- The page: layout at phone and desktop widths, highlight, boilerplate, keyboard, feedback, states -------


def _box(page: Any, selector: str) -> dict[str, float]:
    box: dict[str, float] = page.locator(selector).bounding_box()
    return box


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
@pytest.mark.parametrize("site", ["cbs", "sample"])
def test_layout_holds_at_phone_and_desktop_widths(
    request: pytest.FixtureRequest, browser: Any, artifacts: Path, site: str, viewport: dict[str, int]
) -> None:
    url, question = (
        (request.getfixturevalue("base_url"), "What are the deadlines for non-EU applicants?")
        if site == "cbs"
        else (request.getfixturevalue("sample_url"), "What IELTS score do I need for digital business?")
    )
    page = open_page(browser, viewport)
    try:
        _ask(page, url, question)
        form, box, select, button = (_box(page, s) for s in ("#ask", "#q", "#page", "#go"))
        if viewport is DESKTOP:
            # One row: same top, in order, the button inside the form (the issue saw it wrap under the box).
            assert abs(box["y"] - select["y"]) < 2 and abs(box["y"] - button["y"]) < 2
            assert box["x"] + box["width"] <= select["x"] and select["x"] + select["width"] <= button["x"]
            assert button["x"] + button["width"] <= form["x"] + form["width"]
            assert box["width"] > select["width"]
        else:
            # Stacked, each control the form's full inner width.
            assert select["y"] >= box["y"] + box["height"] and button["y"] >= select["y"] + select["height"]
            for control in (box, select, button):
                assert control["width"] > 0.85 * form["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        # Thumbs up/down only where the server keeps a query log (the sample server does, CBS's does not).
        assert page.is_visible("#feedback") == (site == "sample")
        shot = artifacts / f"page-{site}-{viewport['width']}px.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert page.problems == []
    finally:
        page.context.close()


def test_quoted_sentence_is_highlighted_and_boilerplate_says_where_else(browser: Any, sample_url: str) -> None:
    question = "What IELTS score do I need for digital business?"
    expected = httpx.post(sample_url + "/answer", json={"question": question}, timeout=60).json()
    repeated = [i for i, h in enumerate(expected["hits"]) if h["also_on"]]
    assert repeated, "the sample site repeats its English requirements on two programme pages"
    page = open_page(browser, DESKTOP)
    try:
        _ask(page, sample_url, question)
        cards = page.locator("#hits li.hit")
        for i in repeated:
            details = cards.nth(i).locator("details.also-on")
            pages = len(expected["hits"][i]["also_on"]) + 1
            assert details.locator("summary").inner_text() == f"Appears on {pages} pages"
            details.locator("summary").click()
            links = details.locator("a")
            assert links.count() == pages - 1 and links.first.get_attribute("href").startswith("http://127.0.0.1")
        answer = _words(page.inner_text("#answer-text"), bullets=False)
        marks = page.locator("#hits li.cited mark")
        assert marks.count() >= 1
        for text in marks.all_inner_texts():
            # The highlight is what the answer quotes, word for word (bullets aside).
            assert _words(text, bullets=False) in answer, text
        assert page.locator("#hits li.cited .cited-as").first.inner_text().startswith("cited [")
    finally:
        page.context.close()


def test_a_list_answer_shows_as_a_list_under_its_lead_in(browser: Any, sample_url: str) -> None:
    """The issue's question: the answer quotes the English-test list as a list, the IELTS item whole."""
    question = "what IELTS score do I need for supply chain"
    expected = httpx.post(sample_url + "/answer", json={"question": question}, timeout=60).json()
    assert expected["found"]
    lists = [b for b in expected["blocks"] if b["kind"] == "list"]
    ielts = "- IELTS Academic with an overall score of 7.0 and no band below 6.5"
    assert lists and ielts in lists[0]["lines"]
    assert expected["citations"][lists[0]["n"] - 1]["page_name"] == SUPPLY_CHAIN
    lead = expected["blocks"][expected["blocks"].index(lists[0]) - 1]
    assert lead["kind"] == "text" and lead["lines"] == ["One of the following is accepted:"]
    assert "One of the following is accepted:\n" + ielts in expected["text"]  # the plain text keeps the lines
    page = open_page(browser, DESKTOP)
    try:
        _ask(page, sample_url, question)
        items = page.locator("#answer-text ul.answer-list li")
        assert items.count() == len(lists[0]["lines"])
        assert items.first.inner_text().startswith(ielts.removeprefix("- "))  # the marker is the list's bullet
        assert "One of the following is accepted:" in page.locator("#answer-text p.answer-para").all_inner_texts()
        assert page.locator("#answer-text a.cite").count() == len(expected["citations"])
        assert page.problems == []
    finally:
        page.context.close()


def _focused(page: Any) -> str:
    focused: str = page.evaluate(
        "(() => { const e = document.activeElement; return e.id || e.className || e.tagName; })()"
    )
    return focused


def _tab_to(page: Any, target: str, limit: int = 60) -> None:
    for _ in range(limit):
        if _focused(page) == target:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{target}")


def test_keyboard_only_question_feedback_and_the_report(
    browser: Any, sample_url: str, sample_log: Path, artifacts: Path
) -> None:
    page = open_page(browser, DESKTOP)
    try:
        page.goto(sample_url + "/")
        page.wait_for_selector("#page option:nth-child(2)", state="attached")
        # A question the pages cannot answer, then one they can, both typed and sent with the keyboard only.
        page.keyboard.press("Tab")
        assert _focused(page) == "q"
        page.keyboard.type("What is the capital of Peru?")
        page.keyboard.press("Enter")
        page.wait_for_selector("#answer-text.not-found")
        page.keyboard.press("Shift+Tab")  # from the answer heading back to the form
        _tab_to(page, "q")
        page.keyboard.press("Control+a")
        page.keyboard.type("When are admission letters sent?")
        page.keyboard.press("Tab")
        assert _focused(page) == "page"
        page.keyboard.press("Tab")
        assert _focused(page) == "go"
        page.keyboard.press("Enter")
        page.wait_for_selector("#answer-text:not(.not-found) a.cite")
        assert _focused(page) == "answer-h"  # the answer is announced and Tab continues from it
        page.keyboard.press("Tab")
        assert _focused(page) == "cite"
        _tab_to(page, "helpful-no")
        page.keyboard.press("Space")
        page.wait_for_selector("#feedback-status:has-text('Thanks')")
        assert page.get_attribute("#helpful-no", "aria-pressed") == "true"
        assert page.locator("#helpful-yes").is_disabled()
        assert page.problems == []
    finally:
        page.context.close()

    entries = [json.loads(line) for line in sample_log.read_text(encoding="utf-8").splitlines()]
    asked = {e["question"]: e for e in entries if e["type"] == "question"}
    letters = asked["When are admission letters sent?"]
    assert asked["What is the capital of Peru?"]["answered"] is False and letters["answered"] is True
    assert {"type": "feedback", "id": letters["id"], "helpful": False}.items() <= next(
        e for e in entries if e["type"] == "feedback"
    ).items()

    from sitetune.cli.main import app

    out = artifacts / "report"
    result = CliRunner().invoke(app, ["report", "--query-log", str(sample_log), "--out", str(out)])
    assert result.exit_code == 0, result.output
    gaps = result.output.split('questions answered "not found"')[1].split("## ")[0]
    unhelpful = result.output.split("Answers marked unhelpful")[1]
    assert '"What is the capital of Peru?"' in gaps
    assert '1 × "When are admission letters sent?"' in unhelpful
    assert (out / "report.png").stat().st_size > 10_000


def test_loading_and_error_states(browser: Any, base_url: str) -> None:
    page = open_page(browser, DESKTOP)
    held: list[Any] = []
    try:
        page.goto(base_url + "/")
        page.wait_for_selector("#page option:nth-child(2)", state="attached")
        # Loading: the request is held until the assertions ran.
        page.route("**/answer", lambda route: held.append(route))
        page.fill("#q", "When is the application deadline?")
        page.click("#go")
        page.wait_for_selector("#go.busy")
        assert page.locator("#go").is_disabled() and page.inner_text("#go") == "Asking\u2026"
        assert page.get_attribute("#output", "aria-busy") == "true"
        assert page.inner_text("#status") == "Searching the pages\u2026"
        held.pop().continue_()
        page.wait_for_selector("#hits li.hit")
        assert not page.locator("#go").is_disabled() and page.get_attribute("#output", "aria-busy") == "false"
        page.unroute("**/answer")

        # A busy server: the message in the error style, with a retry that works once the server recovers.
        page.route(
            "**/answer",
            lambda route: route.fulfill(
                status=503, content_type="application/json",
                body='{"detail": "the server is busy: try again in a moment", "errors": []}',
            ),
        )
        page.click("#go")
        page.wait_for_selector("#status-box.error")
        assert page.inner_text("#status") == "the server is busy: try again in a moment"
        assert page.get_attribute("#status", "role") == "alert" and page.is_visible("#retry")
        page.unroute("**/answer")
        page.click("#retry")
        page.wait_for_selector("#status:has-text('sections found')")
        assert not page.is_visible("#retry") and "error" not in (page.get_attribute("#status-box", "class") or "")

        # No network at all.
        page.route("**/answer", lambda route: route.abort())
        page.click("#go")
        page.wait_for_selector("#status-box.error")
        assert "could not be reached" in page.inner_text("#status") and page.is_visible("#retry")
    finally:
        for route in held:
            route.continue_()
        page.context.close()


# --- A first look at the page (issue 30): the empty page, cut-off controls, focus, lists, "not found", links --

SAMPLE_NAME = "Harbour School of Business"
WIDTHS = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
# How wide a select's chosen option is drawn (its font, measured on a canvas) and the room its box leaves.
TEXT_ROOM = """(selector) => {
  const e = document.querySelector(selector);
  const cs = getComputedStyle(e);
  const text = e.options[e.selectedIndex].text;
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  const room = e.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  return {text: text, width: context.measureText(text).width, room: room};
}"""
PLACEHOLDER_FITS = """(selector) => {
  const e = document.querySelector(selector);
  e.value = e.placeholder;
  const out = {text: e.placeholder, scroll: e.scrollWidth, client: e.clientWidth};
  e.value = "";
  return out;
}"""
#: Room Chromium keeps for a select's arrow inside its padding box.
SELECT_ARROW_PX = 24


def _no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["width"] > 0
        and inner["height"] > 0
    )


@WIDTHS
def test_empty_page_names_the_site_and_offers_example_questions(
    browser: Any, sample_url: str, sample_site: SampleSite, viewport: dict[str, int], tmp_path: Path
) -> None:
    site = httpx.get(sample_url + "/site", timeout=30).json()
    assert site["name"] == SAMPLE_NAME
    page = open_page(browser, viewport)
    try:
        page.goto(sample_url + "/")
        page.wait_for_selector("#intro:not([hidden]) button.example")
        assert page.inner_text("#site-title") == f"Ask {SAMPLE_NAME}" and page.title() == f"Ask {SAMPLE_NAME}"
        examples = page.locator("#examples button.example")
        texts = examples.all_inner_texts()
        assert texts == site["examples"] and len(texts) == 3 and len(set(texts)) == 3
        # Drawn from the sections: each names a section title the pages share or is one of them.
        titles = {r.section_type.lower() for r in sample_site.records}
        for text in texts:
            topic = text.lower().removeprefix("what are the ").removesuffix("?")
            assert topic in titles or text.lower() in titles, text
        main = _box(page, "main")
        for i in range(3):
            assert _inside(examples.nth(i).bounding_box(), main)
        _no_sideways_scroll(page)
        page.screenshot(path=str(tmp_path / f"empty-{viewport['width']}px.png"), full_page=True)

        examples.nth(1).click()  # clicking one asks it
        page.wait_for_selector("#answer:not([hidden])")
        assert page.input_value("#q") == texts[1]
        assert page.is_hidden("#intro")
        assert "not found" not in page.inner_text("#answer-text").lower()
        assert page.evaluate("new URLSearchParams(location.search).get('q')") == texts[1]
        assert page.problems == []
    finally:
        page.context.close()


@WIDTHS
def test_filter_and_placeholder_are_not_cut_off(
    browser: Any, base_url: str, viewport: dict[str, int], tmp_path: Path
) -> None:
    page = open_page(browser, viewport)
    try:
        page.goto(base_url + "/")
        page.wait_for_selector("#page option:nth-child(2)", state="attached")
        # The placeholder typed in as the value: the box scrolls sideways when the text does not fit (the
        # room a search box keeps for its clear button counts, as it did when the placeholder was cut off).
        placeholder = page.evaluate(PLACEHOLDER_FITS, "#q")
        assert placeholder["text"] and placeholder["scroll"] <= placeholder["client"], placeholder
        choice = page.evaluate(TEXT_ROOM, "#page")
        assert choice["text"] == "All programmes and pages"
        assert choice["width"] + SELECT_ARROW_PX <= choice["room"], choice
        form = _box(page, "#ask")
        for selector in ("#q", "#page", "#go"):
            assert _inside(_box(page, selector), form), selector
        _no_sideways_scroll(page)
        page.screenshot(path=str(tmp_path / f"form-{viewport['width']}px.png"))
    finally:
        page.context.close()


@WIDTHS
def test_answer_heading_takes_focus_without_an_input_like_ring(
    browser: Any, sample_url: str, viewport: dict[str, int], tmp_path: Path
) -> None:
    page = open_page(browser, viewport)
    try:
        page.goto(sample_url + "/")
        page.wait_for_selector("#page option:nth-child(2)", state="attached")
        page.focus("#q")
        page.keyboard.type("When are admission letters sent?")
        page.keyboard.press("Enter")  # the keyboard path: Chromium then shows focus rings on what gets focus
        page.wait_for_selector("#answer-text a.cite")
        assert _focused(page) == "answer-h"  # focus management stays: the answer is announced
        ring = page.evaluate(
            "(() => { const s = getComputedStyle(document.activeElement);"
            " return {style: s.outlineStyle, width: s.outlineWidth, shadow: s.boxShadow,"
            " border: s.borderTopStyle}; })()"
        )
        assert ring["style"] == "none" or ring["width"] == "0px", ring
        assert ring["shadow"] == "none" and ring["border"] == "none", ring
        # Controls still show where the keyboard is.
        page.keyboard.press("Tab")
        assert _focused(page) == "cite"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        page.screenshot(path=str(tmp_path / f"answer-focus-{viewport['width']}px.png"))
    finally:
        page.context.close()


@WIDTHS
def test_section_cards_show_list_items_as_bullets(
    browser: Any, sample_url: str, viewport: dict[str, int], tmp_path: Path
) -> None:
    question = "What IELTS score do I need for digital business?"
    expected = httpx.post(sample_url + "/answer", json={"question": question}, timeout=60).json()
    listed = [h for h in expected["hits"] if any(line.startswith("- ") for line in h["text"].splitlines())]
    assert listed, "the English requirements sections hold a list"
    page = open_page(browser, viewport)
    try:
        _ask(page, sample_url, question)
        cards = page.locator("#hits li.hit")
        items = page.locator("#hits li.hit .hit-text ul.hit-list > li")
        assert items.count() >= 1
        assert page.evaluate("getComputedStyle(document.querySelector('.hit-list > li')).listStyleType") == "disc"
        for i in range(cards.count()):
            text = cards.nth(i).locator(".hit-text").inner_text()
            assert not any(line.lstrip().startswith(("- ", "\u2022 ")) for line in text.splitlines()), text
        first = expected["hits"].index(listed[0])
        card = cards.nth(first)
        items_in_card = card.locator(".hit-text ul.hit-list > li").all_inner_texts()
        lines = [line[2:] for line in listed[0]["text"].splitlines() if line.startswith("- ")]
        assert items_in_card == lines
        assert _inside(card.locator(".hit-list").first.bounding_box(), _box(page, "#hits"))
        # Quoted items keep their highlight inside the bullet.
        assert page.locator("#hits li.cited .hit-list li mark").count() >= 1
        _no_sideways_scroll(page)
        page.screenshot(path=str(tmp_path / f"bullets-{viewport['width']}px.png"), full_page=True)
        assert page.problems == []
    finally:
        page.context.close()


@WIDTHS
def test_not_found_keeps_the_closest_sections_collapsed(
    browser: Any, sample_url: str, viewport: dict[str, int], tmp_path: Path
) -> None:
    page = open_page(browser, viewport)
    try:
        _ask(page, sample_url, "What is the capital of Peru?", wait_for="#answer-text.not-found")
        assert page.is_hidden("#results") and page.locator("#hits li").count() == 0
        assert page.is_visible("#closest") and page.get_attribute("#closest", "open") is None
        assert page.inner_text("#closest-summary") == "Closest sections (5)"
        closest = page.locator("#closest-hits li.hit")
        assert closest.count() == 5 and not closest.first.is_visible()
        assert "sections found" not in page.inner_text("#status")
        page.screenshot(path=str(tmp_path / f"not-found-{viewport['width']}px.png"), full_page=True)
        page.click("#closest-summary")
        assert closest.first.is_visible()
        # A question that is answered afterwards shows its sections again, and no closest ones.
        page.fill("#q", "When are admission letters sent?")
        page.click("#go")
        page.wait_for_selector("#hits li.hit")
        assert page.is_hidden("#closest") and page.is_visible("#results")
    finally:
        page.context.close()


@WIDTHS
def test_question_can_be_linked_bookmarked_and_gone_back_to(
    browser: Any, sample_url: str, viewport: dict[str, int], tmp_path: Path
) -> None:
    from urllib.parse import quote

    first, second = "When are admission letters sent?", "What IELTS score do I need?"
    page = open_page(browser, viewport)
    try:
        # A link with ?q= (and a page filter) asks on load.
        page.goto(f"{sample_url}/?q={quote(first)}&page={quote(SUPPLY_CHAIN)}")
        page.wait_for_selector("#hits li.hit")
        assert page.input_value("#q") == first and page.input_value("#page") == SUPPLY_CHAIN
        assert set(page.locator("#hits .hit-page").all_inner_texts()) == {SUPPLY_CHAIN}
        assert page.is_hidden("#intro")
        page.screenshot(path=str(tmp_path / f"linked-{viewport['width']}px.png"), full_page=True)
        # Asking puts the question in the address bar.
        page.select_option("#page", "")
        page.fill("#q", second)
        page.click("#go")
        page.wait_for_selector("#status:has-text('sections found')")
        params = page.evaluate("Object.fromEntries(new URLSearchParams(location.search))")
        assert params == {"q": second}
        # Back returns to the linked question and its answer.
        page.go_back()
        page.wait_for_selector(f"#status:has-text('{SUPPLY_CHAIN}')")
        assert page.input_value("#q") == first and page.input_value("#page") == SUPPLY_CHAIN
        assert page.problems == []
    finally:
        page.context.close()
