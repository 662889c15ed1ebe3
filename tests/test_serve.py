"""The HTTP API on a real store and model: validation, body limit, static files, headers, CORS, escaping."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    assert health == {"status": "ok", "model": "base", "pages": 7, "llm": False}
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
        ({"q": "x" * 1001}, "q: must be at most 1000 characters"),
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
    assert body["warning"].startswith("generative mode failed")


def test_openapi_documents_the_api(client: TestClient, live: str) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/pages", "/search", "/answer"} <= set(spec["paths"])
    assert spec["paths"]["/answer"]["post"]["responses"]["422"]
    docs = httpx.get(f"{live}/docs")
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
    assert len(answered["log_id"]) == 16 and answered["log_id"] != missing["log_id"]
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
