"""The HTTP API on a real store and model: validation, body limit, static files, headers, CORS, escaping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from serve_helpers import HOSTILE_PAGE, HOSTILE_TEXT, live_server, raw_request, session_store
from sitetune.config import ServeConfig
from sitetune.serve import STATIC_DIR, create_app


@pytest.fixture(scope="module")
def searcher(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder):  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as s:
        yield s


@pytest.fixture(scope="module")
def client(searcher: Any) -> TestClient:
    return TestClient(create_app(searcher, model_name="base"))


@pytest.fixture(scope="module")
def live(searcher: Any) -> Iterator[str]:
    with live_server(create_app(searcher)) as url:
        yield url


def test_health_pages_search_and_answer(client: TestClient) -> None:
    health = client.get("/healthz").json()
    age = health.pop("generation_age_s")
    assert isinstance(age, float) and age >= 0
    assert health == {"status": "ok", "model": "base", "pages": 7, "llm": False, "generation": 1, "reload_error": None,
                      "refresh": None, "model_stale": None, "corpus_changed_since_training": None}
    pages = client.get("/pages").json()["pages"]
    assert "Deadlines" in pages and HOSTILE_PAGE in pages

    data = client.get("/search", params={"q": "application deadline", "k": 3}).json()
    assert len(data["results"]) == 3 and data["k"] == 3
    assert {"chunk_id", "text", "score", "page_name", "section_title", "url", "also_on"} <= set(
        data["results"][0]
    )

    only = client.get(
        "/search", params={"q": "application deadline", "k": 10, "page": "Part-time master"}
    ).json()
    assert only["results"] and {r["page_name"] for r in only["results"]} == {"Part-time master"}

    answer = client.post("/answer", json={"question": "When is the application deadline?"}).json()
    assert answer["found"] is True and answer["mode"] == "extractive"
    assert answer["citations"] and "[1]" in answer["text"]
    assert answer["citations"][0]["url"].startswith("https://www.cbs.dk/")

    off = client.post("/answer", json={"question": "What is the capital of Peru?", "k": 3}).json()
    assert off["found"] is False and "not found in the pages" in off["text"].lower()
    assert off["citations"] == [] and len(off["hits"]) == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "q: must not be empty"),
        ({"q": " \t "}, "q: must not be empty or only whitespace"),
        ({"q": "x" * 1001}, "q: must be at most 300 characters, not 1001 (the server's --max-query-chars)"),
        ({"q": "a " * 61}, "q: must be at most 60 words, not 61 (the server's --max-query-words)"),
        ({"q": "deadline", "k": 0}, "k: must be between 1 and 50"),
        ({"q": "deadline", "k": 51}, "k: must be between 1 and 50"),
        ({"q": "deadline", "k": "ten"}, "k: must be a whole number"),
        ({"q": "deadline", "page": "Narnia"}, "page: unknown page 'Narnia'"),
        ({}, "q: is required"),
    ],
)
def test_search_rejects_bad_input_with_a_clear_422(
    client: TestClient, params: dict[str, Any], message: str
) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message)
    assert response.json()["errors"][0]["field"] == message.split(":")[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: is not valid JSON"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b'{"question": "   "}', "body.question: must not be empty or only whitespace"),
        (b'{"question": "deadline", "k": 99}', "body.k: must be between 1 and 50"),
        (b'{"question": "deadline", "admin": true}', "body.admin: is not a known field"),
        (b'{"question": "deadline", "page": "Narnia"}', "body.page: unknown page 'Narnia'"),
        (b"{}", "body.question: is required"),
        (b'{"question": "\xff\xfe"}', "body: is not valid JSON text (UTF-8 expected)"),
    ],
)
def test_answer_rejects_bad_input_with_a_clear_422(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/answer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message)


def test_a_query_over_the_length_limit_is_refused_before_any_model_work(searcher: Any) -> None:
    # Over a real socket, so the limit holds for what a client sends, not only for the test transport.
    config = ServeConfig(max_query_chars=120, max_query_words=20)
    with live_server(create_app(searcher, config)) as url, httpx.Client(base_url=url, timeout=30) as http:
        long = "deadline " * 555 + "fee"  # 4,998 + 3 characters
        assert len(long) > 5000 - 10
        search = http.get("/search", params={"q": long})
        answer = http.post("/answer", json={"question": long})
        assert (search.status_code, answer.status_code) == (422, 422)
        chars = f"must be at most 120 characters, not {len(long)} (the server's --max-query-chars)"
        assert search.json()["errors"] == [{"field": "q", "message": chars}]
        assert answer.json()["detail"] == f"body.question: {chars}"
        words = http.get("/search", params={"q": "fee " * 21})
        assert words.status_code == 422 and "at most 20 words, not 21" in words.json()["detail"]
        # At the limit: served, and the OpenAPI document states the character limit.
        assert http.get("/search", params={"q": "application " * 10}).status_code == 200  # 120 characters
        schema = http.get("/openapi.json").json()
        q = next(p for p in schema["paths"]["/search"]["get"]["parameters"] if p["name"] == "q")
        assert q["schema"]["maxLength"] == 120
        assert schema["components"]["schemas"]["AnswerRequest"]["properties"]["question"]["maxLength"] == 120


def test_query_limits_outside_their_range_are_refused_at_start(searcher: Any) -> None:
    from sitetune.errors import InputError

    with pytest.raises(InputError, match="--max-query-chars 1001: expected 1 to 1000"):
        create_app(searcher, ServeConfig(max_query_chars=1001))
    with pytest.raises(InputError, match="--max-query-words 0"):
        create_app(searcher, ServeConfig(max_query_words=0))
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--store", "unused", "--max-query-chars", "1001"])
    assert result.exit_code == 2 and "--max-query-chars" in result.output


def test_body_limit_by_declared_length(client: TestClient) -> None:
    response = client.post(
        "/answer", content=b"{" + b" " * 20_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 16384 bytes"


def _chunked(body_parts: list[bytes]) -> bytes:
    head = (
        b"POST /answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body_parts) + b"0\r\n\r\n"


def test_body_limit_counts_chunked_uploads(live: str) -> None:
    # No Content-Length: only counting the streamed bytes can stop this one.
    status, response = raw_request(
        live, _chunked([b'{"question": "' + b"a" * 1024] + [b"a" * 1024] * 40 + [b'"}'])
    )
    assert status == 413, response[:300]
    assert b"request body too large" in response

    small = [b'{"question": ', b'"When is the ', b'application deadline?"}']
    status, response = raw_request(live, _chunked(small))
    assert status == 200, response[:300]
    assert b'"found":true' in response


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/config.py",
        "/static/%2e%2e%2f%2e%2e%2fconfig.py",
        "/static/....//app.py",
        "/static/..\\app.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..%5c..%5cconfig.py",
        "/static/%252e%252e/app.py",
        "/static/",
        "/static/nope.js",
    ],
)
def test_static_files_never_leave_the_static_folder(live: str, path: str) -> None:
    status, response = raw_request(
        live, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 404, (path, response[:200])
    assert b"import " not in response and b"root:" not in response


def test_static_files_and_page_are_served(client: TestClient) -> None:
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The page has no inline script or style: the CSP forbids them.
    assert "<script>" not in page.text and "<style" not in page.text and " on" + "click=" not in page.text


def test_range_requests_are_parsed_safely(client: TestClient) -> None:
    ok = client.get("/static/app.js", headers={"Range": "bytes=0-9"})
    assert ok.status_code == 206 and len(ok.content) == 10
    hostile = "bytes=" + ",".join(f"{i}-{i + 1}" for i in range(0, 20_000, 3))
    start = time.perf_counter()
    response = client.get("/static/app.js", headers={"Range": hostile})
    assert response.status_code < 500
    assert time.perf_counter() - start < 2.0
    assert client.get("/static/app.js", headers={"Range": "bytes=oops"}).status_code in (200, 400, 416)


def test_starlette_is_past_the_static_files_and_range_cves() -> None:
    import starlette

    version = tuple(int(p) for p in starlette.__version__.split(".")[:3])
    assert version >= (0, 49, 1)


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/healthz", "/search?q=", "/static/nope"])
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def test_no_cors_unless_configured(client: TestClient, searcher: Any) -> None:
    origin = {"Origin": "https://attacker.example"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    preflight = client.options("/answer", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers

    allowed = TestClient(create_app(searcher, ServeConfig(cors_origins=("https://admissions.example",))))
    good = allowed.get("/healthz", headers={"Origin": "https://admissions.example"})
    assert good.headers["access-control-allow-origin"] == "https://admissions.example"
    assert "access-control-allow-origin" not in allowed.get("/healthz", headers=origin).headers


def test_retrieved_html_and_markdown_stay_data(client: TestClient) -> None:
    data = client.get("/search", params={"q": "sailing club regatta", "k": 1, "page": HOSTILE_PAGE}).json()
    hit = data["results"][0]
    # JSON carries the text verbatim, as a string; the page puts it in the DOM with textContent only.
    assert hit["text"] == " ".join(HOSTILE_TEXT.split())
    script = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script
    assert "textContent" in script and 'protocol === "https:"' in script


def test_llm_failure_falls_back_to_extractive_with_a_warning(searcher: Any) -> None:
    from sitetune.answer import LLMConfig

    app = create_app(searcher, llm=LLMConfig(url="http://127.0.0.1:9/v1", model="m", timeout_s=2))
    body = TestClient(app).post("/answer", json={"question": "When is the application deadline?"}).json()
    assert body["found"] is True and body["mode"] == "extractive"
    assert body["warning"].startswith("the generative answer failed; an extractive answer is shown")


def test_openapi_documents_the_api(client: TestClient, live: str, searcher: Any) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/pages", "/search", "/answer"} <= set(spec["paths"])
    assert spec["paths"]["/answer"]["post"]["responses"]["422"]
    # Swagger UI and ReDoc load scripts from a CDN without integrity hashes: off unless asked for.
    for path in ("/docs", "/redoc"):
        assert httpx.get(f"{live}{path}").status_code == 404
    assert httpx.get(f"{live}/openapi.json").status_code == 200
    docs = TestClient(create_app(searcher, ServeConfig(docs=True))).get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "unsafe-inline" in docs.headers["content-security-policy"]


def test_serve_command_prints_its_url_and_serves(
    cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    import os
    import socket
    import subprocess
    import sys

    store = session_store(cbs_csv, tmp_path_factory)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path / "queries.jsonl"
    command = [sys.executable, "-m", "sitetune.cli.main", "serve", "--store", str(store), "--port", str(port),
               "--query-log", str(log_path)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        assert process.stdout is not None
        line = ""
        while not line.startswith("sitetune serving"):  # model-loading chatter may come first on stderr
            line = process.stdout.readline()
            assert line or process.poll() is None, "serve exited without printing its URL"
        assert line.startswith(f"sitetune serving {store} at http://127.0.0.1:{port}/"), line
        assert process.stdout.readline().startswith(f"logging questions and feedback to {log_path}")
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "server did not come up"
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        answer = httpx.post(
            f"http://127.0.0.1:{port}/answer", json={"question": "When is the deadline?"}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["citations"]
        assert '"question":"When is the deadline?"' in log_path.read_text(encoding="utf-8")
    finally:
        process.terminate()
        process.wait(20)


def test_serve_command_rejects_bad_flags(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "none"), "--llm-url", "http://x/v1"])
    assert result.exit_code == 2 and "both --llm-url and --llm-model" in result.output
    result = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "none")])
    assert result.exit_code == 2 and f"error: no index at {tmp_path / 'none'}: build one with" in result.output
    result = CliRunner().invoke(app, ["serve", "--store", str(tmp_path), "--query-log", str(tmp_path / "no/q.jsonl")])
    assert result.exit_code == 2 and "the query log's folder does not exist" in result.output


def test_overload_gets_an_immediate_503_not_a_queue(searcher: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with live_server(create_app(searcher, ServeConfig(max_in_flight=1))) as url:

        def ask(i: int) -> httpx.Response:
            return httpx.post(f"{url}/answer", json={"question": f"When is the deadline? {i}"}, timeout=60)

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(ask, range(12)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503}, codes
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["detail"] == "the server is busy: try again in a moment"


def _plain(text: str) -> str:
    """Words only: whitespace and list bullets, which an answer may lay out differently, left out."""
    return " ".join(w for w in text.split() if w not in {"-", "•", "–", "*"})


def test_answer_links_point_at_the_quoted_text(client: TestClient) -> None:
    answer = client.post("/answer", json={"question": "When is the application deadline?"}).json()
    texts = {h["chunk_id"]: h["text"] for h in answer["hits"]}
    for citation in answer["citations"]:
        assert citation["link"].startswith(citation["url"] + "#:~:text=")
        for quote in citation["quotes"]:
            assert quote in texts[citation["chunk_id"]]  # verbatim section text
            assert _plain(quote) in _plain(answer["text"])  # and what the answer says (bullets aside)
    quoted = [h for h in answer["hits"] if h["quoted"]]
    assert quoted, "the cited sections carry the spans the answer quotes"
    for hit in quoted:
        assert all(0 <= s["start"] < s["end"] <= len(hit["text"]) for s in hit["quoted"])
    results = client.get("/search", params={"q": "application deadline", "k": 3}).json()["results"]
    assert all(r["link"].startswith(r["url"] + "#:~:text=") and r["quoted"] == [] for r in results)


def test_feedback_is_refused_without_a_query_log(client: TestClient) -> None:
    answer = client.post("/answer", json={"question": "When is the application deadline?"}).json()
    assert answer["log_id"] is None
    response = client.post("/feedback", json={"id": "0123456789abcdef", "helpful": True})
    assert response.status_code == 404 and "no query log" in response.json()["detail"]


def test_query_log_records_questions_and_feedback(searcher: Any, tmp_path: Path) -> None:
    from sitetune.serve.querylog import QueryLog, read_log

    log_path = tmp_path / "queries.jsonl"
    logged = TestClient(create_app(searcher, query_log=QueryLog(log_path)))
    answered = logged.post("/answer", json={"question": "When is the application deadline?"}).json()
    missing = logged.post("/answer", json={"question": "What is the capital of Peru?", "k": 2}).json()
    assert len(answered["log_id"]) == 32 and answered["log_id"] != missing["log_id"]
    ok = logged.post("/feedback", json={"id": answered["log_id"], "helpful": False})
    assert ok.status_code == 200 and ok.json() == {"recorded": True}
    for body, message in [
        ({"id": "not-an-id", "helpful": True}, "body.id"),
        ({"id": answered["log_id"]}, "body.helpful: is required"),
        ({"id": answered["log_id"], "helpful": True, "ip": "1.2.3.4"}, "body.ip: is not a known field"),
    ]:
        bad = logged.post("/feedback", json=body)
        assert bad.status_code == 422 and bad.json()["detail"].startswith(message), bad.json()

    entries = list(read_log(log_path))
    assert [(e["type"], e.get("answered"), e.get("helpful")) for e in entries] == [
        ("question", True, None),
        ("question", False, None),
        ("feedback", None, False),
    ]
    assert entries[0]["cited"][0]["chunk_id"] == answered["citations"][0]["chunk_id"]
    assert [s["chunk_id"] for s in entries[1]["top"]] == [h["chunk_id"] for h in missing["hits"]]
    # Nothing about the client: the test client's address and headers appear nowhere.
    raw = log_path.read_text(encoding="utf-8")
    assert "testclient" not in raw and "127.0.0.1" not in raw and "user-agent" not in raw.lower()


# --- LLM mode under a slow, failing or leaky endpoint (issue 29) ---

DEADLINE_QUESTION = {"question": "When is the application deadline?"}


def _search_seconds(url: str) -> float:
    start = time.monotonic()
    response = httpx.get(f"{url}/search", params={"q": "application deadline", "k": 3}, timeout=30)
    assert response.status_code == 200
    return time.monotonic() - start


def test_a_slow_llm_holds_up_no_search_and_its_calls_are_bounded(
    searcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from llm_endpoint import RawEndpoint, completion
    from sitetune.answer import LLMConfig

    monkeypatch.delenv("SITETUNE_LLM_API_KEY", raising=False)
    release = threading.Event()

    def slow(conn: socket.socket, body: bytes) -> None:
        release.wait(60)  # a model that takes its time: until the test has measured the searches
        conn.sendall(completion("The application deadline is 1 March [1]."))

    with RawEndpoint(slow) as endpoint:
        llm = LLMConfig(url=endpoint.url, model="m", timeout_s=60)
        app = create_app(searcher, ServeConfig(max_llm_calls=2), llm=llm)
        with live_server(app) as url, ThreadPoolExecutor(2) as pool:
            before = sorted(_search_seconds(url) for _ in range(3))[1]
            answers = [
                pool.submit(lambda: httpx.post(f"{url}/answer", json=DEADLINE_QUESTION, timeout=90))
                for _ in range(2)
            ]
            try:
                deadline = time.monotonic() + 60
                while len(endpoint.requests) < 2:  # both answers are waiting on the LLM at once
                    assert time.monotonic() < deadline, f"{len(endpoint.requests)} of 2 answers reached the LLM"
                    time.sleep(0.05)
                during = [_search_seconds(url) for _ in range(3)]
                busy = httpx.post(f"{url}/answer", json=DEADLINE_QUESTION, timeout=30)
            finally:
                release.set()
            done = [a.result() for a in answers]
    assert max(during) < max(2.0, 5 * before), (before, during)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    assert busy.json()["detail"] == "generative answers are busy: try again in a moment"
    assert len(endpoint.requests) == 2  # the refused answer never reached the LLM
    for response in done:
        body = response.json()
        assert response.status_code == 200 and body["mode"] == "llm" and body["warning"] is None
        assert body["text"] == "The application deadline is 1 March [1]."


def test_a_failing_llm_trips_the_breaker_then_is_tried_again(searcher: Any) -> None:
    import socket

    from llm_endpoint import RawEndpoint, completion, http_response
    from sitetune.answer import LLMConfig

    state = {"ok": False}

    def flaky(conn: socket.socket, body: bytes) -> None:
        if state["ok"]:
            conn.sendall(completion("The application deadline is 1 March [1]."))
        else:
            conn.sendall(http_response(502, b'{"error": "bad gateway"}', reason="Bad Gateway"))

    with RawEndpoint(flaky) as endpoint:
        llm = LLMConfig(url=endpoint.url, model="m", timeout_s=10, breaker_failures=2, breaker_cooldown_s=1.0)
        client = TestClient(create_app(searcher, llm=llm))

        def ask() -> tuple[str, str | None, int]:
            body = client.post("/answer", json=DEADLINE_QUESTION).json()
            assert body["found"] is True
            return body["mode"], body["warning"], len(endpoint.requests)

        failed = "the generative answer failed; an extractive answer is shown (reference "
        paused = "the generative answer is unavailable for now; an extractive answer is shown"
        for expected_calls in (1, 2):
            mode, warning, calls = ask()
            assert mode == "extractive" and calls == expected_calls
            assert warning is not None and warning.startswith(failed)
        assert ask() == ("extractive", paused, 2)  # open: no call, an extractive answer at once
        time.sleep(1.1)
        mode, warning, calls = ask()  # the cool-down is over: one call is tried, and fails
        assert calls == 3 and warning is not None and warning.startswith(failed)
        assert ask() == ("extractive", paused, 3)
        state["ok"] = True
        time.sleep(1.1)
        assert ask() == ("llm", None, 4)  # the trial call works: calls resume
        assert ask() == ("llm", None, 5)


def test_llm_failure_details_go_to_the_log_not_to_clients(
    searcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import re
    import socket

    from llm_endpoint import RawEndpoint, http_response
    from sitetune.answer import LLMConfig

    secret = "SECRET-upstream-token-5f1c0de"

    def broken(conn: socket.socket, body: bytes) -> None:
        conn.sendall(http_response(500, f'{{"error": "db password {secret}"}}'.encode(), reason="Error"))

    with RawEndpoint(broken) as endpoint:
        llm = LLMConfig(url=endpoint.url, model="m", timeout_s=10)
        with caplog.at_level(logging.WARNING), live_server(create_app(searcher, llm=llm)) as url:
            response = httpx.post(f"{url}/answer", json=DEADLINE_QUESTION, timeout=60)
    host = endpoint.url.removeprefix("http://").split("/")[0]
    assert response.status_code == 200
    assert secret not in response.text and host not in response.text and "chat/completions" not in response.text
    warning = response.json()["warning"]
    match = re.fullmatch(
        r"the generative answer failed; an extractive answer is shown \(reference ([0-9a-f]{12})\)", warning
    )
    assert match, warning
    logged = [r.getMessage() for r in caplog.records if match.group(1) in r.getMessage()]
    assert len(logged) == 1 and secret in logged[0] and endpoint.url in logged[0]


# --- Issue 29: connection limits, feedback hardening, 500 headers, /docs, Host check -------------------------------


@contextmanager
def _guarded_server(app: Any, config: ServeConfig) -> Iterator[tuple[str, int]]:
    """``app`` under uvicorn with the connection limits ``sitetune serve`` uses; yields (host, port)."""
    import threading

    import uvicorn

    from sitetune.serve.connections import server_options

    uv_config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **server_options(config)
    )
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def _closed(sock: Any) -> bool:
    """Whether the server has closed the socket ``sock`` (read without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_idle_and_slowloris_connections_are_closed_and_others_answered(searcher: Any) -> None:
    import contextlib
    import socket

    timeout = 1.0
    with _guarded_server(create_app(searcher), ServeConfig(header_timeout_s=timeout, keep_alive_s=1)) as address:
        start = time.monotonic()
        idle = [socket.create_connection(address) for _ in range(150)]
        dribblers = [socket.create_connection(address) for _ in range(5)]
        for sock in dribblers:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        try:
            # A normal client is answered while 155 connections hang on.
            url = f"http://{address[0]}:{address[1]}"
            assert httpx.get(f"{url}/search", params={"q": "application deadline"}, timeout=10).status_code == 200
            closed: dict[int, float] = {}
            everyone = idle + dribblers
            while len(closed) < len(everyone) and time.monotonic() - start < timeout + 4:
                for n, sock in enumerate(everyone):
                    if n in closed:
                        continue
                    if sock in dribblers:
                        with contextlib.suppress(OSError):
                            sock.sendall(b"a")  # a header byte every 0.1 s does not move the deadline
                    if _closed(sock):
                        closed[n] = time.monotonic() - start
                time.sleep(0.1)
            assert len(closed) == len(everyone), f"{len(everyone) - len(closed)} connections still open"
            assert max(closed.values()) < timeout + 4
            assert min(closed.values()) > timeout * 0.8  # closed by the deadline, not at once
            # And the server still answers afterwards.
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        finally:
            for sock in idle + dribblers:
                sock.close()


def test_the_connection_cap_refuses_then_recovers(searcher: Any) -> None:
    import socket

    config = ServeConfig(header_timeout_s=1.0, max_connections=10)
    with _guarded_server(create_app(searcher), config) as address:
        url = f"http://{address[0]}:{address[1]}"
        idle = [socket.create_connection(address) for _ in range(10)]
        try:
            time.sleep(0.3)  # accepted
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 503  # uvicorn's limit_concurrency
            time.sleep(2.0)  # the idle connections pass their deadline and are closed
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        finally:
            for sock in idle:
                sock.close()


def test_workers_get_the_same_connection_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle
    from dataclasses import replace

    import uvicorn

    from sitetune.config import EncoderConfig
    from sitetune.serve.connections import GuardedH11Protocol
    from sitetune.serve.workers import WorkerSettings, run_workers

    captured: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def config_spy(app: Any, **kwargs: Any) -> None:
        captured.update(kwargs)
        raise Stop

    monkeypatch.setattr(uvicorn, "Config", config_spy)
    serve = ServeConfig(workers=2, pin_workers=False, header_timeout_s=3.5, keep_alive_s=2, max_connections=77)
    with pytest.raises(Stop):
        run_workers(WorkerSettings(store="store", serve=serve, encoder=EncoderConfig()))
    assert (captured["timeout_keep_alive"], captured["limit_concurrency"], captured["backlog"]) == (2, 77, 64)
    protocol = pickle.loads(pickle.dumps(captured["http"]))  # it travels to the spawned workers
    assert protocol.func is GuardedH11Protocol and protocol.keywords == {"header_timeout_s": 3.5}
    with pytest.raises(Stop):
        run_workers(WorkerSettings(store="store", serve=replace(serve, backlog=9), encoder=EncoderConfig()))
    assert captured["backlog"] == 9
    settings = WorkerSettings(
        store="s", serve=replace(serve, allowed_hosts=("a.example",), docs=True), encoder=EncoderConfig()
    )
    assert WorkerSettings.model_validate_json(settings.model_dump_json()) == settings


def test_run_server_gives_workers_one_feedback_key_and_the_host_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from sitetune.serve import run_server, workers
    from sitetune.serve.querylog import FEEDBACK_KEY_ENV

    seen: dict[str, Any] = {}

    def run_workers_spy(settings: Any, **kwargs: Any) -> None:
        seen.update(key=os.environ.get(FEEDBACK_KEY_ENV), serve=settings.serve)

    monkeypatch.setattr(workers, "run_workers", run_workers_spy)
    monkeypatch.delenv(FEEDBACK_KEY_ENV, raising=False)
    run_server(tmp_path, ServeConfig(workers=2), query_log=tmp_path / "q.jsonl", log=lambda line: None)
    assert seen["key"] and len(seen["key"]) == 64 and FEEDBACK_KEY_ENV not in os.environ
    assert seen["serve"].allowed_hosts == ("127.0.0.1", "localhost", "[::1]")
    monkeypatch.setenv(FEEDBACK_KEY_ENV, "o" * 32)  # the operator's key wins (ids survive restarts)
    run_server(tmp_path, ServeConfig(workers=2, host="0.0.0.0", allowed_hosts=("search.example.org",)),
               log=lambda line: None)
    assert seen["key"] == "o" * 32 and seen["serve"].allowed_hosts == ("search.example.org",)


def _logged_app(searcher: Any, path: Path, **config: Any) -> Any:
    from sitetune.serve.querylog import QueryLog

    return create_app(searcher, ServeConfig(**config), query_log=QueryLog(path))


def test_feedback_accepts_only_ids_this_server_issued(searcher: Any, tmp_path: Path) -> None:
    import secrets

    log_path = tmp_path / "queries.jsonl"
    logged = TestClient(_logged_app(searcher, log_path, feedback_per_minute=10_000, feedback_burst=100))
    log_id = logged.post("/answer", json={"question": "When is the application deadline?"}).json()["log_id"]
    before = log_path.read_bytes()
    for _ in range(20):
        invented = logged.post("/feedback", json={"id": secrets.token_hex(16), "helpful": True})
        assert invented.status_code == 404, invented.json()
        assert invented.json()["detail"].startswith("body.id: no answer was given with this id")
    for bad in ("not-hex", log_id[:16], "0123456789abcdef", log_id.upper(), log_id + "00"):
        response = logged.post("/feedback", json={"id": bad, "helpful": True})
        assert response.status_code == 422, (bad, response.json())
        assert response.json()["detail"].startswith("body.id: is not an answer id"), response.json()
        assert response.json()["errors"] == [{"field": "body.id", "message": response.json()["detail"][9:]}]
    assert log_path.read_bytes() == before  # nothing invented reached the log
    assert logged.post("/feedback", json={"id": log_id, "helpful": True}).json() == {"recorded": True}
    # Another server process (another key) does not know the id.
    other = TestClient(_logged_app(searcher, log_path))
    assert other.post("/feedback", json={"id": log_id, "helpful": True}).status_code == 404
    spec = logged.get("/openapi.json").json()["paths"]["/feedback"]["post"]["responses"]
    assert {"404", "422", "429"} <= set(spec)


def test_feedback_is_rate_limited_per_client_and_capped_per_answer(searcher: Any, tmp_path: Path) -> None:
    from sitetune.serve.querylog import read_log

    log_path = tmp_path / "queries.jsonl"
    app = _logged_app(searcher, log_path, feedback_per_minute=1, feedback_burst=4)
    first = TestClient(app, client=("203.0.113.5", 40000))
    log_id = first.post("/answer", json={"question": "When is the application deadline?"}).json()["log_id"]
    responses = [first.post("/feedback", json={"id": log_id, "helpful": n % 2 == 0}) for n in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429, 429]
    # Three votes per answer are written; the fourth is answered but not recorded.
    assert [r.json().get("recorded") for r in responses[:4]] == [True, True, True, False]
    limited = responses[-1]
    assert limited.json()["detail"] == "too much feedback from this address: try again later"
    assert int(limited.headers["retry-after"]) >= 1 and "content-security-policy" in limited.headers
    # Invented ids spend the same budget: guessing is rate-limited too.
    assert first.post("/feedback", json={"id": "0" * 32, "helpful": True}).status_code == 429
    # Another address has its own budget.
    second = TestClient(app, client=("203.0.113.6", 40000))
    assert second.post("/feedback", json={"id": log_id, "helpful": True}).json() == {"recorded": False}
    assert [e["type"] for e in read_log(log_path)] == ["question", "feedback", "feedback", "feedback"]


def test_rate_limiter_refills_and_remembers_a_bounded_number_of_clients() -> None:
    from sitetune.serve.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(6, 2, per=60, max_clients=100, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 10]  # one token every 10 s
    now[0] = 10.0
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0, 10]
    for n in range(10_000):
        limiter.acquire(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100


def test_an_unhandled_error_is_a_500_with_the_security_headers(searcher: Any) -> None:
    app = create_app(searcher)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a secret detail")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "errors": []}
    assert "a secret detail" not in response.text
    headers = response.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_host_header_must_name_an_allowed_host(searcher: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sitetune.cli.main import app as cli
    from sitetune.config import LOOPBACK_HOSTS, default_allowed_hosts
    from sitetune.errors import InputError

    app = create_app(searcher, ServeConfig(allowed_hosts=default_allowed_hosts("127.0.0.1")))
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert TestClient(app, base_url=f"http://{host}").get("/healthz").status_code == 200, host
    rebound = TestClient(app, base_url="http://attacker.example:8000").get("/healthz")
    assert rebound.status_code == 400 and "content-security-policy" in rebound.headers
    assert default_allowed_hosts("0.0.0.0") == default_allowed_hosts("::") == LOOPBACK_HOSTS
    assert default_allowed_hosts("::1") == ("[::1]", "localhost", "127.0.0.1")
    assert default_allowed_hosts("Search.example.org")[0] == "search.example.org"
    wide = create_app(searcher, ServeConfig(allowed_hosts=("*.example.org",)))
    assert TestClient(wide, base_url="http://search.example.org").get("/healthz").status_code == 200
    with pytest.raises(InputError, match="--allowed-host 'a\\*b'"):
        create_app(searcher, ServeConfig(allowed_hosts=("a*b",)))
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path), "--allowed-host", "a*b"])
    assert result.exit_code == 2 and "--allowed-host 'a*b'" in result.output


def test_serve_help_documents_the_new_options() -> None:
    from typer.testing import CliRunner

    from sitetune.cli.main import app as cli

    result = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    text = " ".join(result.output.split())
    for option in ("--docs", "--allowed-host", "--keep-alive", "--header-timeout", "--max-connections",
                   "--backlog", "--feedback-per-minute", "--rate-limit", "--rate-burst"):
        assert option in text, option
    assert "IP address" in text  # --access-log says what it records
