"""A running server follows its store: live switches, reader leases and prune, SIGHUP, /admin/reload, /healthz.

Real parts only: the packaged model, real stores re-indexed with :func:`build_index`, uvicorn on 127.0.0.1
(in a thread, or ``sitetune serve --workers 2`` as processes) and httpx clients.
"""

from __future__ import annotations

import gc
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve_helpers import free_port, live_server, session_store, start_serve, wait_healthy
from sitetune.config import ServeConfig
from sitetune.index import EmbeddedStore, build_index, open_store
from sitetune.index.lease import LEASE_DIR, live_leases
from sitetune.recordio import read_records, write_records
from sitetune.records import SectionRecord
from sitetune.search import Searcher
from sitetune.serve.app import create_app
from sitetune.serve.reload import ADMIN_TOKEN_ENV, Follow, store_opener

QUERY = "harbour rowing regatta notice board edition"
MARKERS = ("alpha", "bravo", "charlie", "delta")
_MARKER_RE = re.compile(r"edition (\w+)")
TOKEN = "s3cret-admin-token-for-tests"


def _marker_records(marker: str) -> list[SectionRecord]:
    """Two sections on two pages that name the corpus version: a response mixing generations shows two."""
    return [
        SectionRecord("Campus news", "Notice board", "Notice board",
                      f"The harbour rowing regatta notice board edition {marker} lists this year's crews.",
                      "https://example.org/campus-news"),
        SectionRecord("Rowing club", "Regatta", "Regatta",
                      f"Harbour rowing regatta: notice board edition {marker} of the results is posted.",
                      "https://example.org/rowing-club"),
    ]


class Site:
    """A copy of the session's serve store and a way to re-index it with a corpus of a given version."""

    def __init__(self, store: Path, base: Path, slice_csv: Path) -> None:
        self.store = store
        self.base = base
        self.records = list(read_records(slice_csv))

    def reindex(self, marker: str) -> int:
        corpus = self.base / f"corpus-{marker}.csv"
        write_records([*self.records, *_marker_records(marker)], corpus)
        return build_index(corpus, "base", self.store, progress=False).generation


@pytest.fixture
def site(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Site:
    shared = session_store(cbs_csv, tmp_path_factory)
    store = tmp_path / "store"
    shutil.copytree(shared, store, ignore=shutil.ignore_patterns(LEASE_DIR, ".lock"))
    made = Site(store, tmp_path, Path(tmp_path_factory.getbasetemp()) / "serve-slice.csv")
    made.reindex(MARKERS[0])
    return made


def _markers(response: httpx.Response) -> set[str]:
    return {m for hit in response.json()["results"] for m in _MARKER_RE.findall(hit["text"])}


def _app(site: Site, poll_s: float):  # type: ignore[no-untyped-def]
    searcher = Searcher.open(site.store)
    config = ServeConfig(reload_poll_s=poll_s)
    return create_app(searcher, config, follow=Follow(str(site.store), store_opener(site.store)))


@pytest.fixture
def followed(site: Site) -> Iterator[tuple[Site, str, object]]:
    """A live in-process server polling the store every 0.1 s."""
    app = _app(site, 0.1)
    try:
        with live_server(app) as url:
            yield site, url, app
    finally:
        app.state.follower.close()


def test_searches_switch_once_per_reindex_with_no_errors_and_no_mixed_results(
    followed: tuple[Site, str, object],
) -> None:
    site, url, _ = followed
    seen: list[tuple[int, frozenset[str]]] = []
    stop = threading.Event()

    def client() -> None:  # about 20 searches a second, as a student-facing page would see under load
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                response = http.get("/search", params={"q": QUERY, "k": 5})
                seen.append((response.status_code, frozenset(_markers(response)) if response.is_success
                             else frozenset()))
                time.sleep(0.05)

    thread = threading.Thread(target=client)
    thread.start()
    generations = []
    try:
        for marker in MARKERS[1:]:
            time.sleep(0.5)  # some searches on the old corpus first
            generations.append(site.reindex(marker))
            deadline = time.monotonic() + 60
            while not any(marker in m for _, m in seen[-3:]):
                assert time.monotonic() < deadline, f"the server never served the '{marker}' corpus"
                time.sleep(0.05)
            health = httpx.get(f"{url}/healthz").json()
            assert health["generation"] == generations[-1]
            assert health["generation_age_s"] is not None and health["generation_age_s"] >= 0
            assert health["reload_error"] is None
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(30)
    gc.collect()  # a request's frame may still hold an old generation until collected
    assert {lease.generation for lease in live_leases(site.store)} == {generations[-1]}, "an old lease was kept"
    statuses = {status for status, _ in seen}
    assert statuses == {200}, f"errors during the switches: {statuses}"
    assert all(len(markers) == 1 for _, markers in seen), "a response mixed two generations"
    order = [next(iter(m)) for _, m in seen]
    switches = [order[0]] + [b for a, b in itertools.pairwise(order) if a != b]
    assert switches == list(MARKERS), f"expected one switch per re-index, in order; got {switches}"


def test_a_broken_generation_keeps_the_old_one_served_and_admin_reload_needs_the_token(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    app = _app(site, 0)  # no polling: only POST /admin/reload switches
    try:
        with live_server(app) as url:
            first = httpx.get(f"{url}/healthz").json()["generation"]
            broken = site.reindex("bravo")
            with open(EmbeddedStore(site.store).gen_dir(broken) / "chunks.jsonl", "a", encoding="utf-8") as fh:
                fh.write("\n")  # any change: the manifest's checksum no longer matches

            assert httpx.post(f"{url}/admin/reload").status_code == 401
            wrong = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 403
            assert httpx.get(f"{url}/healthz").json()["generation"] == first

            auth = {"Authorization": f"Bearer {TOKEN}"}
            refused = httpx.post(f"{url}/admin/reload", headers=auth, timeout=60)
            assert refused.status_code == 200
            assert refused.json()["switched"] is False and refused.json()["generation"] == first
            health = httpx.get(f"{url}/healthz").json()
            assert health["generation"] == first
            assert f"generation {broken}" in health["reload_error"] and "checksum" in health["reload_error"]
            search = httpx.get(f"{url}/search", params={"q": QUERY})
            assert search.status_code == 200 and _markers(search) == {"alpha"}

            fixed = site.reindex("charlie")
            switched = httpx.post(f"{url}/admin/reload", headers=auth, timeout=60).json()
            assert switched == {"generation": fixed, "switched": True, "error": None}
            health = httpx.get(f"{url}/healthz").json()
            assert health["generation"] == fixed and health["reload_error"] is None
            assert _markers(httpx.get(f"{url}/search", params={"q": QUERY})) == {"charlie"}
    finally:
        app.state.follower.close()

    monkeypatch.delenv(ADMIN_TOKEN_ENV)
    tokenless = _app(site, 0)
    try:
        with live_server(tokenless) as url:
            assert httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer x"}).status_code == 404
            assert "/admin/reload" not in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        tokenless.state.follower.close()


def test_prune_keeps_a_leased_generation_and_reclaims_a_dead_readers_lease(site: Site) -> None:
    store = EmbeddedStore(site.store)
    reader = open_store(site.store)
    held = reader.generation.manifest.generation
    assert [(lease.generation, lease.pid) for lease in live_leases(site.store)] == [(held, os.getpid())]
    site.reindex("bravo")
    site.reindex("charlie")  # without the lease this prune removes `held` (only the last two are kept)
    assert store.gen_dir(held).is_dir()
    assert reader.bm25 is not None and len(reader.chunks) > 0
    reader.close()
    assert live_leases(site.store) == []
    site.reindex("delta")
    assert not store.gen_dir(held).exists()

    # A reader in another process, killed without releasing its lease.
    target = store.current()
    assert target is not None
    code = ("import sys, time; from sitetune.index.lease import take_lease; "
            "lease = take_lease(sys.argv[1], int(sys.argv[2]), sys.argv[3]); print('held', flush=True); "
            "time.sleep(600)")
    reader_process = subprocess.Popen(
        [sys.executable, "-c", code, str(site.store), str(target), str(store.gen_dir(target))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader_process.stdout is not None and reader_process.stdout.readline().strip() == "held"
        assert [(lease.generation, lease.pid) for lease in live_leases(site.store)] == [(target, reader_process.pid)]
        site.reindex("echo")
        site.reindex("foxtrot")
        assert store.gen_dir(target).is_dir()  # the live reader keeps it
    finally:
        reader_process.send_signal(signal.SIGKILL)
        reader_process.wait(30)
    # A lease file some reader left without its lock (it died between writing and locking) counts as dead too.
    orphan = site.store / LEASE_DIR / f"gen-{target:06d}.pid-999999.abc123.lease"
    orphan.write_text('{"pid": 999999}\n', encoding="utf-8")
    site.reindex("golf")
    assert not store.gen_dir(target).exists()
    assert not orphan.exists()
    assert [p.name for p in (site.store / LEASE_DIR).iterdir() if p.suffix == ".lease"] == []


def test_workers_switch_on_sighup_and_on_admin_reload(site: Site, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    os.environ[ADMIN_TOKEN_ENV] = TOKEN  # inherited by the server process only
    try:
        process = start_serve(site.store, port, log, "--workers", "2", "--reload-poll", "0", "--no-warm")
    finally:
        del os.environ[ADMIN_TOKEN_ENV]
    try:
        wait_healthy(url, process, log)
        first = httpx.get(f"{url}/healthz").json()["generation"]

        def generations_by_worker(expected: int) -> dict[str, int]:
            """Ask until both workers have answered /healthz with ``expected`` (or the deadline passes)."""
            latest: dict[str, int] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                response = httpx.get(f"{url}/healthz", timeout=10)  # a new connection each time
                latest[response.headers["x-sitetune-worker"]] = response.json()["generation"]
                if len(latest) == 2 and set(latest.values()) == {expected}:
                    break
                time.sleep(0.05)
            return latest

        second = site.reindex("bravo")
        time.sleep(1)
        assert {g for g in generations_by_worker(first).values()} == {first}  # polling is off
        workers_before = set(generations_by_worker(first))
        process.send_signal(signal.SIGHUP)
        after_hup = generations_by_worker(second)
        assert set(after_hup.values()) == {second}, log.read_text()
        assert set(after_hup) == workers_before  # the same workers switched: none was restarted

        third = site.reindex("charlie")
        response = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert response.status_code == 200 and response.json()["generation"] == third
        after_post = generations_by_worker(third)  # the supervisor passed the request on to the other worker
        assert set(after_post.values()) == {third}, log.read_text()
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
