"""The embeddable widget (``/widget.js``) on a page of another origin, in headless Chromium, and its CORS.

One ``sitetune serve --allow-origin http://127.0.0.1:<A>`` process over the CBS slice store, and two plain
host pages served by ``http.server`` on 127.0.0.1: port A (listed) and port B (not listed). Each page embeds
the one script tag and styles everything it can (``* { color: red !important }``, a serif font, button
styles) to show that none of it reaches the widget's Shadow DOM, and that the widget's CSS stays inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from serve_helpers import chromium, free_port, open_page, session_store, start_serve, stop, wait_healthy
from sitetune.cli.main import app
from sitetune.serve.widget import WIDGET_FILE

#: The widget's own button colours (widget.js's CSS), which the host page's CSS must not change.
WIDGET_BUTTON = {"color": "rgb(255, 255, 255)", "background": "rgb(29, 78, 216)"}
HOST_RED = "rgb(255, 0, 0)"
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A department's own page</title><link rel="icon" href="data:,">
<style>
  * {{ color: rgb(255, 0, 0) !important; font-family: serif !important; letter-spacing: 3px !important; }}
  button {{ background: rgb(0, 128, 0) !important; border: 5px dotted black !important; font-size: 30px; }}
  .status, .answer-text, .hits, h2 {{ display: block !important; text-transform: lowercase !important; }}
</style></head>
<body>
  <h1>Studying here</h1>
  <p>The search below comes from another server.</p>
  <button id="host-button" type="button">A button of the page</button>
  <ol class="hits" id="host-list"><li>The page's own list</li></ol>
  <script src="{api}/widget.js" data-endpoint="{api}" defer></script>
  <p id="after">After the widget.</p>
</body></html>
"""
# The widget's parts, read from its open shadow root (the host pages have no CSP, so evaluating is allowed).
SHADOW = """() => {
  const host = document.querySelector("[data-sitetune-widget]");
  const root = host && host.shadowRoot;
  if (!root) return null;
  const style = (node) => { const s = getComputedStyle(node); return {
    color: s.color, background: s.backgroundColor, font: s.fontFamily, spacing: s.letterSpacing }; };
  return {
    nextToTag: host.previousElementSibling && host.previousElementSibling.tagName,
    button: style(root.querySelector("button")),
    answer: root.querySelector(".answer-text") ? root.querySelector(".answer-text").textContent : "",
    answerHidden: root.querySelector(".answer").hidden,
    cites: [...root.querySelectorAll(".answer-text a.cite")].map((a) => ({href: a.href, rel: a.rel})),
    sources: [...root.querySelectorAll(".sources a")].map((a) => a.href),
    hits: [...root.querySelectorAll(".results .hit a.hit-title")].map((a) => a.href),
    status: root.querySelector(".status").textContent,
    statusRole: root.querySelector(".status").getAttribute("role"),
    inLightDom: document.querySelectorAll(".answer-text, .cite, form").length,
    hostButton: style(document.getElementById("host-button")),
    hostListStyle: getComputedStyle(document.getElementById("host-list")).listStyleType,
  };
}"""


class _HostPages:
    """The host page, written for the API's URL, served on its own port (another origin than the API)."""

    def __init__(self, api: str) -> None:
        body = HOST_PAGE.format(api=api).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keeps the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def servers(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``api`` (sitetune serve), ``listed`` (the page on the allowed origin) and ``other`` (a page on another)."""
    store = session_store(cbs_csv, tmp_path_factory)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    listed, other = _HostPages(api), _HostPages(api)
    log = tmp_path_factory.mktemp("widget") / "serve.log"
    # --allow-origin is written with a trailing slash: still the same origin.
    process = start_serve(store, port, log, "--no-warm", "--reload-poll", "0", "--allow-origin", listed.url + "/")
    try:
        wait_healthy(api, process, log)
        yield {"api": api, "listed": listed.url, "other": other.url}
    finally:
        stop(process)
        listed.close()
        other.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    page = open_page(browser, {"width": 1100, "height": 1000})
    try:
        yield page
    finally:
        page.context.close()


def _ask(page: Any, url: str, question: str, *, wait_for: str) -> dict[str, Any]:
    page.goto(url + "/")
    # Playwright's CSS selectors pierce open shadow roots.
    page.fill("[data-sitetune-widget] input", question)
    page.click("[data-sitetune-widget] button")
    page.wait_for_selector(f"[data-sitetune-widget] {wait_for}")
    shadow: dict[str, Any] = page.evaluate(SHADOW)
    return shadow


def test_widget_on_a_listed_origin_shows_the_cited_answer_and_hits(page: Any, servers: dict[str, str]) -> None:
    shadow = _ask(page, servers["listed"], "When is the application deadline?", wait_for=".answer-text a.cite")
    assert shadow["nextToTag"] == "SCRIPT"  # placed right after its tag
    assert "[1]" in shadow["answer"] and "not found" not in shadow["answer"].lower()
    assert shadow["cites"] and all(c["href"].startswith("https://www.cbs.dk/") for c in shadow["cites"])
    assert all(c["rel"] == "noopener noreferrer" for c in shadow["cites"])
    assert shadow["sources"] and shadow["hits"]
    assert all(h.startswith("https://") for h in shadow["hits"])
    assert shadow["inLightDom"] == 0  # everything is inside the shadow root
    assert page.problems == []


def test_host_page_css_does_not_reach_the_widget_nor_the_widget_css_the_page(
    page: Any, servers: dict[str, str]
) -> None:
    page.goto(servers["listed"] + "/")
    page.wait_for_selector("[data-sitetune-widget] button")
    shadow = page.evaluate(SHADOW)
    # The page's rules are live on its own elements ...
    assert shadow["hostButton"]["color"] == HOST_RED and shadow["hostButton"]["background"] == "rgb(0, 128, 0)"
    # ... and change nothing in the widget, not even through inheritance (color, font, letter-spacing).
    assert shadow["button"]["color"] == WIDGET_BUTTON["color"]
    assert shadow["button"]["background"] == WIDGET_BUTTON["background"]
    assert not shadow["button"]["font"].startswith("serif") and shadow["button"]["spacing"] != "3px"
    # The widget's `.hits { list-style: none }` stays inside: the page's own ol.hits keeps its numbers.
    assert shadow["hostListStyle"] == "decimal"


def test_widget_on_an_origin_not_listed_is_blocked_and_says_so(page: Any, servers: dict[str, str]) -> None:
    shadow = _ask(page, servers["other"], "When is the application deadline?", wait_for=".status.error")
    assert "could not be reached" in shadow["status"] and shadow["statusRole"] == "alert"
    assert shadow["answerHidden"] and shadow["cites"] == [] and shadow["hits"] == []
    # The browser, not the widget, refused: it reports the CORS failure on the console.
    assert any("CORS" in problem or "Access-Control-Allow-Origin" in problem for problem in page.problems)


def test_cors_headers_only_for_the_listed_origin(servers: dict[str, str]) -> None:
    api, listed, other = servers["api"], servers["listed"], servers["other"]
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    good = httpx.options(f"{api}/answer", headers={"Origin": listed, **preflight})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == listed
    assert "Origin" in good.headers["vary"] and "access-control-allow-credentials" not in good.headers
    posted = httpx.post(f"{api}/answer", json={"question": "deadline"}, headers={"Origin": listed}, timeout=60)
    assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == listed
    assert "Origin" in posted.headers["vary"]

    refused = httpx.options(f"{api}/answer", headers={"Origin": other, **preflight})
    assert refused.status_code == 400 and "--allow-origin" in refused.json()["detail"]
    assert not [name for name in refused.headers if name.lower().startswith("access-control-")]
    answered = httpx.post(f"{api}/answer", json={"question": "deadline"}, headers={"Origin": other}, timeout=60)
    assert answered.status_code == 200  # answered, but a browser hides it from the page: no CORS headers
    assert not [name for name in answered.headers if name.lower().startswith("access-control-")]
    assert "Origin" in answered.headers["vary"]


def test_widget_script_is_served_for_any_page_to_load(servers: dict[str, str]) -> None:
    response = httpx.get(servers["api"] + "/widget.js", headers={"Origin": servers["other"]})
    assert response.status_code == 200 and response.text == WIDGET_FILE.read_text()
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["x-content-type-options"] == "nosniff"
    # The server's CORP same-origin, sent with every other response, would keep the script off other sites.
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert httpx.get(servers["api"] + "/healthz").headers["cross-origin-resource-policy"] == "same-origin"


def test_widget_builds_its_dom_from_text_only() -> None:
    script = WIDGET_FILE.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script
    assert "textContent" in script and 'parsed.protocol === "https:"' in script
    assert 'credentials: "omit"' in script


@pytest.mark.parametrize(
    "origin",
    ["https://www.example.org/admissions", "null", "www.example.org", "ftp://example.org", "https://x.example:0x1"],
)
def test_an_allow_origin_that_is_not_an_origin_is_refused(tmp_path: Path, origin: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--store", str(tmp_path), "--allow-origin", origin])
    assert result.exit_code == 2
    assert f"--allow-origin {origin!r}: expected scheme://host[:port]" in result.output
