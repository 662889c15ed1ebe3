"""The Milvus server backend against a real Milvus standalone server (the ``milvus`` 2.3 package's binary).

One server for the session (tests/milvus_server.py); the bundled sample site's corpus and the base model
keep it fast. A TCP relay in front of the server plays the server going away mid-call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from milvus_server import MilvusServerProcess, Relay, milvus_server  # noqa: F401
from sitetune.config import CrawlConfig
from sitetune.corpus import Corpus
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.index import EmbeddedStore, StoreError, build_index, open_store
from sitetune.index.milvus import MilvusStore
from sitetune.recordio import read_records, write_records

pytestmark = pytest.mark.slow

QUESTIONS = [
    "When is the application deadline?",
    "Which English tests do you accept?",
    "Do I need to pay a tuition fee?",
    "supply chain courses",
    "how is my grade point average calculated",
]
FILTER_PAGE = "MSc in Digital Business"
DROPPED_PAGE = "MSc in Accounting and Audit"
CHANGED_PAGE = "MSc in Supply Chain Management"
TIMEOUT_S = "5"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Sidecars in a temporary cache folder, short Milvus timeouts; the same for CLI subprocesses."""
    values = {"SITETUNE_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "SITETUNE_MILVUS_TIMEOUT_S": TIMEOUT_S}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield {**os.environ, **values}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample site's corpus (A), and B: one page dropped, every section of another one changed."""
    folder = tmp_path_factory.mktemp("sample")
    fast = replace(CrawlConfig(), delay_s=0.0, backoff_s=0.05, max_backoff_s=0.1, timeout_s=5.0)
    a = crawl_folder(sample_site_dir(), folder / "a.jsonl", config=fast, progress=False).corpus
    records = read_records(a)
    changed = [
        replace(r, text=r.text + " Late applications are not considered.") if r.page_name == CHANGED_PAGE else r
        for r in records
        if r.page_name != DROPPED_PAGE
    ]
    assert len(changed) < len(records) and any(r.page_name == CHANGED_PAGE for r in changed)
    write_records(changed, folder / "b.jsonl")
    return Path(a), folder / "b.jsonl"


def _ids(path: Path) -> set[str]:
    return {c.chunk_id for c in Corpus.load(path).chunks}


def _cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    code = "import sys; from sitetune.cli.main import app; sys.argv = ['sitetune'] + sys.argv[1:]; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def server_store(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
) -> dict[str, object]:
    """A server store indexed from A, re-indexed from B, then from B again; the three reports."""
    uri = f"{milvus_server.uri}/sample"
    a, b = corpora
    reports = [build_index(path, "base", uri, progress=False) for path in (a, b, b)]
    return {"uri": uri, "reports": reports}


@pytest.fixture(scope="module")
def embedded_store(corpora: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("embedded") / "store"
    build_index(corpora[1], "base", store, progress=False)
    return store


def test_reindex_embeds_only_changed_chunks_and_deletes_removed_rows(
    server_store: dict[str, object], corpora: tuple[Path, Path]
) -> None:
    a, b = corpora
    first, second, third = server_store["reports"]  # type: ignore[misc]
    kept, new, gone = _ids(a) & _ids(b), _ids(b) - _ids(a), _ids(a) - _ids(b)
    assert kept and new and gone
    assert (first.embedded, first.reused, first.removed) == (len(_ids(a)), 0, 0)
    assert (second.embedded, second.reused, second.removed) == (len(new), len(kept), len(gone))
    assert (third.embedded, third.reused, third.removed) == (0, len(_ids(b)), 0)
    assert third.generation == 3
    with open_store(str(server_store["uri"])) as reader:
        assert reader.milvus is not None
        assert set(reader.milvus.present()) == _ids(b)  # the removed page's rows are gone from the server
        assert {c.chunk_id for c in reader.chunks} == _ids(b)
        assert reader.milvus.collection.startswith("sample_")


def test_server_store_ranks_exactly_like_the_embedded_store(
    server_store: dict[str, object], embedded_store: Path, base_encoder: object
) -> None:
    from sitetune.search import Searcher

    uri = str(server_store["uri"])
    with (
        Searcher.open(uri, encoder=base_encoder) as server,  # type: ignore[arg-type]
        Searcher.open(embedded_store, encoder=base_encoder) as local,  # type: ignore[arg-type]
    ):
        for question in QUESTIONS:
            vector = local.encode_query(question)
            # Dense alone: the same ids in the same order, the same cosines (float32 rounding apart).
            remote_dense = server.reader.dense(vector, 10)
            local_dense = local.reader.dense(vector, 10)
            assert [r for r, _ in remote_dense] == [r for r, _ in local_dense], question
            assert np.allclose([s for _, s in remote_dense], [s for _, s in local_dense], atol=1e-5)
            # The whole hybrid search, without and with a page filter.
            assert [h.chunk_id for h in server.search(question, k=10)] == [
                h.chunk_id for h in local.search(question, k=10)
            ]
            filtered = server.search(question, k=5, page=FILTER_PAGE)
            assert filtered and all(h.page_name == FILTER_PAGE for h in filtered)
            assert [h.chunk_id for h in filtered] == [h.chunk_id for h in local.search(question, k=5, page=FILTER_PAGE)]


def test_cli_searches_a_server_store_within_a_page(
    server_store: dict[str, object], env: dict[str, str]
) -> None:
    uri = str(server_store["uri"])
    page = _cli(["search", QUESTIONS[0], "--store", uri, "--json", "--page", FILTER_PAGE], env)
    assert page.returncode == 0, page.stderr
    results = json.loads(page.stdout)["results"]
    assert results and {r["page_name"] for r in results} == {FILTER_PAGE}


def _other_model(folder: Path) -> Path:
    """The base model's files under another document template: another model to the store."""
    from sitetune.models import base_model_path

    folder.mkdir()
    for item in base_model_path().iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "sitetune.json").write_text(json.dumps({"document_template": "{section_title}: {text}"}))
    return folder


def test_another_model_is_refused_then_reindexing_with_it_switches_collections(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    from sitetune.search import Searcher

    uri = f"{milvus_server.uri}/switch"
    a = corpora[0]
    build_index(a, "base", uri, progress=False)
    other = _other_model(tmp_path / "other-model")
    with pytest.raises(StoreError, match="different model"):
        Searcher.open(uri, model=str(other))
    refused = _cli(["search", "deadline", "--store", uri, "--model", str(other)], env)
    assert refused.returncode == 2 and "different model" in refused.stderr
    base_collection = MilvusStore(uri).collection_for(open_store(uri).manifest.model_fingerprint)

    report = build_index(a, str(other), uri, progress=False)
    assert report.embedded == len(_ids(a))  # another model: everything re-embedded, into its own collection
    store = MilvusStore(uri)
    try:
        names = store.client.list_collections()
    finally:
        store.close()
    assert base_collection not in names  # the old model's collection is dropped once the switch is done
    with Searcher.open(uri) as searcher:
        assert searcher.search("deadline", k=3)


def test_server_down_is_a_clear_error_and_writes_nothing(
    corpora: tuple[Path, Path], env: dict[str, str], tmp_path: Path
) -> None:
    relay = Relay(target=1).start()  # a port that is ours, then closed: nothing listens there
    relay.cut()
    uri = f"{relay.uri}/down"
    started = time.monotonic()
    result = _cli(["index", "--corpus", str(corpora[0]), "--store", uri, "--no-progress"], env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: cannot connect to Milvus at {uri}"), result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 90  # bounded by the timeout, not minutes of retries
    assert not MilvusStore(uri).sidecar.exists()  # no generation written
    searched = _cli(["search", "deadline", "--store", uri], env)
    assert searched.returncode == 2 and "no index" in searched.stderr


def test_server_going_away_mid_write_leaves_the_previous_generation_then_resumes(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
    embedded_store: Path,
    base_encoder: object,
) -> None:
    from sitetune.search import Searcher

    a, b = corpora
    relay = Relay(target=milvus_server.port).start()
    uri = f"{relay.uri}/away"
    build_index(a, "base", uri, progress=False)
    # What a run that writes no vector sends (connecting, listing the rows) ...
    relay.cut_after_upload(None)
    unchanged = _cli(["index", "--corpus", str(a), "--store", uri, "--no-progress", "--json"], env)
    assert unchanged.returncode == 0 and json.loads(unchanged.stdout)["embedded"] == 0, unchanged.stderr
    # ... plus a third of B's new vectors: the connection is cut in the middle of the upsert.
    new_rows = len(_ids(b) - _ids(a))
    assert new_rows >= 8
    relay.cut_after_upload(relay.uploaded + new_rows * 384 * 4 // 3)
    result = _cli(["index", "--corpus", str(b), "--store", uri, "--no-progress"], env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: Milvus at {uri}: upserting rows"), result.stderr
    assert "Traceback" not in result.stderr
    assert EmbeddedStore(MilvusStore(uri).sidecar.root).generations() == [1, 2]  # no new, partial generation

    relay = Relay(target=milvus_server.port, port=relay.port).start()  # the server is back
    with Searcher.open(uri, encoder=base_encoder) as searcher:  # type: ignore[arg-type]
        assert {c.chunk_id for c in searcher.reader.chunks} == _ids(a)  # the last complete index, whole
        assert searcher.search(QUESTIONS[0], k=3)
    resumed = build_index(b, "base", uri, progress=False)
    assert resumed.generation == 3 and resumed.embedded == len(_ids(b) - _ids(a))
    with (
        Searcher.open(uri, encoder=base_encoder) as server,  # type: ignore[arg-type]
        Searcher.open(embedded_store, encoder=base_encoder) as local,  # type: ignore[arg-type]
    ):
        for question in QUESTIONS[:2]:
            assert [h.chunk_id for h in server.search(question)] == [h.chunk_id for h in local.search(question)]
    relay.cut()


def test_server_going_away_mid_query_is_a_clear_error(
    milvus_server: MilvusServerProcess,  # noqa: F811
    server_store: dict[str, object],
    env: dict[str, str],
    base_encoder: object,
) -> None:
    from sitetune.search import Searcher

    relay = Relay(target=milvus_server.port).start()
    # The relay's port is another host:port, so it needs its own sidecar: copy the direct one.
    direct = MilvusStore(str(server_store["uri"])).sidecar.root
    uri = f"{relay.uri}/sample"
    shutil.copytree(direct, MilvusStore(uri).sidecar.root)
    with Searcher.open(uri, encoder=base_encoder) as searcher:  # type: ignore[arg-type]
        assert searcher.search(QUESTIONS[0], k=3)
        relay.stall()  # the next request never reaches the server...
        threading.Timer(1.0, relay.cut).start()  # ...and then the server is gone
        started = time.monotonic()
        with pytest.raises(StoreError, match=rf"Milvus at {uri}: searching failed"):
            searcher.search(QUESTIONS[1], k=3)
        assert time.monotonic() - started < float(TIMEOUT_S) + 10
    searched = _cli(["search", "deadline", "--store", uri], env)
    assert searched.returncode == 2, searched.stderr
    assert searched.stderr.splitlines()[-1].startswith(f"error: cannot connect to Milvus at {uri}"), searched.stderr
    assert "Traceback" not in searched.stderr
