"""The per-client rate limit of /search and /answer, and /healthz under load (issue 29, availability).

A real server on 127.0.0.1 with the packaged base model. Clients are told apart the way a reverse proxy on
the same machine tells them apart: uvicorn takes the client's address from ``X-Forwarded-For`` on a
connection from a trusted proxy (``FORWARDED_ALLOW_IPS``, set here explicitly). No timed assertions but
generous "does not hang" bounds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_helpers import live_server, session_store
from sitetune.config import ServeConfig
from sitetune.errors import InputError
from sitetune.serve import create_app
from sitetune.serve.ratelimit import TOO_MANY, RateLimiter, request_limiter

#: A bound for "does not hang": every request here is answered in well under a second when nothing waits.
HANG_S = 20.0
QUESTION = {"question": "When is the application deadline?"}


@pytest.fixture(scope="module")
def searcher(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder):  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as s:
        yield s


@pytest.fixture
def trust_loopback_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn trusts ``X-Forwarded-For`` from a proxy on 127.0.0.1 (its default, made explicit)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")


def as_client(address: str) -> dict[str, str]:
    """The headers a trusted proxy on loopback adds for a request from ``address``."""
    return {"X-Forwarded-For": address}


# -- the limiter ---------------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_its_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 3, clock=lambda: now[0])  # 2 a second after 3 at once
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 1]
    assert limiter.acquire("b") == 0  # another client has its own bucket
    now[0] = 0.5  # one token back
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0, 1]
    slow = RateLimiter(1, 1, per=60, clock=lambda: now[0])  # one a minute
    assert [slow.acquire("a"), slow.acquire("a")] == [0, 60]


def test_the_bucket_table_stays_bounded_and_forgets_idle_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(10, 5, max_clients=1_000, clock=lambda: now[0])
    for _ in range(5):
        limiter.acquire("flooder")
    assert limiter.acquire("flooder") > 0
    for n in range(20_000):  # a flood from many addresses at once: the table is capped
        limiter.acquire(f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}")
        assert len(limiter) <= 1_000
    assert len(limiter) == 1_000
    now[0] = 0.2  # the flood's clients have refilled (one token each at 10 a second)
    assert limiter.acquire("late") == 0
    assert len(limiter) == 1  # every idle bucket is forgotten: the table holds only who still counts
    assert [limiter.acquire("flooder") for _ in range(6)] == [0, 0, 0, 0, 0, 1]
    now[0] = 0.25
    for n in range(100):  # newer clients arrive; a client still over its rate is remembered meanwhile
        limiter.acquire(f"192.0.2.{n}")
    assert limiter.acquire("flooder") > 0 and len(limiter) == 102


def test_the_request_limit_comes_from_the_config_and_refuses_bad_values() -> None:
    assert request_limiter(ServeConfig(rate_limit=0)) is None
    default = request_limiter(ServeConfig())
    assert default is not None and default.rate == ServeConfig.rate_limit
    with pytest.raises(InputError, match="--rate-limit -1"):
        request_limiter(ServeConfig(rate_limit=-1))
    with pytest.raises(InputError, match="--rate-burst 0"):
        request_limiter(ServeConfig(rate_burst=0))
    with pytest.raises(InputError, match="--rate-limit nan"):  # create_app checks it before anything else
        create_app(None, ServeConfig(rate_limit=float("nan")))  # type: ignore[arg-type]


# -- a live server -------------------------------------------------------------------------------------


@pytest.fixture
def limited(searcher: Any, trust_loopback_proxy: None) -> Iterator[str]:
    # About one token every 100 s after a burst of 3: nothing refills while the test runs.
    with live_server(create_app(searcher, ServeConfig(rate_limit=0.01, rate_burst=3))) as url:
        yield url


def test_a_client_over_its_rate_gets_429_before_validation_while_another_is_served(limited: str) -> None:
    flooder, other = as_client("198.51.100.7"), as_client("198.51.100.8")
    with httpx.Client(base_url=limited, timeout=HANG_S) as http:
        served = [http.get("/search", params={"q": "deadline"}, headers=flooder) for _ in range(2)]
        served.append(http.post("/answer", json=QUESTION, headers=flooder))
        assert [r.status_code for r in served] == [200, 200, 200]  # the burst; /answer spends the same bucket
        refused = http.get("/search", params={"q": "deadline"}, headers=flooder)
        assert refused.status_code == 429
        assert refused.json() == {"detail": TOO_MANY, "errors": []}
        assert int(refused.headers["retry-after"]) >= 1
        assert "content-security-policy" in refused.headers and "x-request-id" in refused.headers
        # Refused before the router, the query parameters or the body are looked at: no 422, no 405.
        assert http.get("/search", headers=flooder).status_code == 429
        assert http.post("/answer", content=b"{not json", headers=flooder).status_code == 429
        assert http.put("/answer", headers=flooder).status_code == 429
        # Another client's bucket is its own, and paths that do no model work are not limited.
        assert http.get("/search", params={"q": "deadline"}, headers=other).status_code == 200
        assert http.post("/answer", json=QUESTION, headers=other).status_code == 200
        assert http.get("/healthz", headers=flooder).status_code == 200
        assert http.get("/pages", headers=flooder).status_code == 200


def test_healthz_and_another_client_are_answered_during_a_flood(limited: str) -> None:
    flooder, other = as_client("198.51.100.9"), as_client("198.51.100.10")
    stop = threading.Event()
    statuses: list[int] = []

    def flood() -> None:
        with httpx.Client(base_url=limited, timeout=HANG_S) as http:
            while not stop.is_set():
                statuses.append(http.get("/search", params={"q": "x" * 2000}, headers=flooder).status_code)

    with ThreadPoolExecutor(6) as pool:
        floods = [pool.submit(flood) for _ in range(6)]
        try:
            deadline = time.monotonic() + HANG_S
            while len(statuses) < 300:
                assert time.monotonic() < deadline, f"only {len(statuses)} flood requests answered"
                time.sleep(0.01)
            with httpx.Client(base_url=limited, timeout=HANG_S) as http:
                health = http.get("/healthz", headers=flooder)
                search = http.get("/search", params={"q": "deadline"}, headers=other)
        finally:
            stop.set()
        for f in floods:
            f.result(HANG_S)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert search.status_code == 200 and search.json()["results"]
    # The burst's three got the over-long query's 422; everything after it was refused unread.
    assert statuses.count(422) == 3 and statuses.count(429) == len(statuses) - 3


def test_the_limit_is_by_the_connections_address_unless_a_trusted_proxy_names_the_client(
    searcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # a proxy elsewhere: loopback is not trusted
    app = create_app(searcher, ServeConfig(rate_limit=0.01, rate_burst=2))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=HANG_S) as http:
        # A client inventing a new X-Forwarded-For for every request still spends one bucket.
        statuses = [
            http.get("/search", params={"q": "deadline"}, headers=as_client(f"203.0.113.{n}")).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 429, 429]


def test_rate_limit_zero_turns_it_off(searcher: Any) -> None:
    app = create_app(searcher, ServeConfig(rate_limit=0, rate_burst=1))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=HANG_S) as http:
        assert {http.get("/search", params={"q": "x" * 2000}).status_code for _ in range(5)} == {422}


def test_healthz_needs_no_threadpool_thread(searcher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every threadpool thread waits on a slow LLM; /healthz still answers at once (it runs on the loop)."""
    from llm_endpoint import RawEndpoint, completion
    from sitetune.answer import LLMConfig

    monkeypatch.delenv("SITETUNE_LLM_API_KEY", raising=False)
    release = threading.Event()
    answers = 60  # more than the threadpool's threads (Starlette's default limiter: 40)

    def slow(conn: socket.socket, body: bytes) -> None:
        release.wait(120)
        conn.sendall(completion("The application deadline is 1 March [1]."))

    with RawEndpoint(slow) as endpoint:
        llm = LLMConfig(url=endpoint.url, model="m", timeout_s=120)
        config = ServeConfig(max_llm_calls=answers, max_in_flight=answers, rate_limit=0)
        with live_server(create_app(searcher, config, llm=llm)) as url, ThreadPoolExecutor(answers) as pool:
            pending = [
                pool.submit(lambda: httpx.post(f"{url}/answer", json=QUESTION, timeout=180))
                for _ in range(answers)
            ]
            try:
                deadline = time.monotonic() + 60
                while len(endpoint.requests) < 40:  # the threadpool is full of answers waiting on the LLM
                    assert time.monotonic() < deadline, f"{len(endpoint.requests)} answers reached the LLM"
                    time.sleep(0.05)
                health = httpx.get(f"{url}/healthz", timeout=HANG_S)
            finally:
                release.set()
            done = [p.result() for p in pending]
    assert health.status_code == 200 and health.json()["llm"] is True
    assert {r.status_code for r in done} == {200}
