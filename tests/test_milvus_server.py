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
from typing import Any

import numpy as np
import pytest

from milvus_server import MilvusServerProcess, Relay, milvus_server  # noqa: F401
from sitetune.config import DEFAULT_BM25_FIELDS, CrawlConfig
from sitetune.corpus import Corpus
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.index import EmbeddedStore, StoreError, build_index, open_store
from sitetune.index.build import IndexReport, bm25_text
from sitetune.index.identity import corpus_hash, doc_hash, model_fingerprint
from sitetune.index.milvus import MilvusStore
from sitetune.index.store import Manifest
from sitetune.lexical import BM25Index
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
    assert a is not None
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


def _collections(uri: str) -> list[str]:
    """The store's collections on the server (asked with pymilvus itself)."""
    store = MilvusStore(uri)
    try:
        return sorted(n for n in store.client.list_collections() if n.startswith(f"{store.name}_"))
    finally:
        store.close()


def _alias(uri: str) -> str | None:
    """The collection the store's alias names on the server (``None``: no alias)."""
    store = MilvusStore(uri)
    try:
        return str(store.client.describe_alias(store.name)["collection_name"])
    except Exception:  # pymilvus raises MilvusException for an alias that does not exist
        return None
    finally:
        store.close()


def _generation(uri: str, number: int) -> str:
    """The collection of generation ``number``: the store's collection name and the number."""
    return f"{MilvusStore(uri).name}_g{number:06d}"


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
    reports: list[IndexReport] = server_store["reports"]  # type: ignore[assignment]
    first, second, third = reports
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
    with open_store(uri) as reader:
        assert reader.milvus is not None
        base_collection = reader.milvus.collection

    report = build_index(a, str(other), uri, progress=False)
    assert report.embedded == len(_ids(a))  # another model: everything re-embedded, into its own collection
    # The old model's collection stays as long as its generation is the previous one (a server may not have
    # switched yet) and goes with it at the next re-index.
    assert base_collection in _collections(uri)
    with Searcher.open(uri) as searcher:
        assert searcher.search("deadline", k=3)
    build_index(a, str(other), uri, progress=False)
    assert base_collection not in _collections(uri)


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


# --- a collection per generation behind an alias --------------------------------------------------------


def _query_vectors(encoder: Any) -> np.ndarray:
    """The questions, and the dropped page's name, as the model encodes questions."""
    texts = [*QUESTIONS, DROPPED_PAGE]
    return np.asarray(encoder.encode([encoder.info.query(t) for t in texts]), dtype=np.float32)


def _answers(reader: Any, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
    """What a reader's dense search answers for each vector: (chunk_id, cosine rounded), best first."""
    return [[(reader.chunks[r].chunk_id, round(s, 4)) for r, s in reader.dense(v, 10)] for v in vectors]


def test_a_reader_keeps_its_generation_while_the_next_is_built_and_switched_then_new_readers_get_it(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
    base_encoder: object,
) -> None:
    a, b = corpora
    uri = f"{milvus_server.uri}/live"
    build_index(a, "base", uri, progress=False)
    vectors = _query_vectors(base_encoder)
    reports: list[object] = []
    failures: list[BaseException] = []

    def reindex() -> None:
        try:
            reports.append(build_index(b, "base", uri, progress=False))
        except BaseException as exc:  # handed to the test thread
            failures.append(exc)

    with open_store(uri) as old:
        before = _answers(old, vectors)
        assert any(old.chunks[r].page_name == DROPPED_PAGE for r, _ in old.dense(vectors[-1], 10))
        writer = threading.Thread(target=reindex)
        writer.start()
        rounds = 0
        try:
            while writer.is_alive():  # generation 2 is being built, checked and switched meanwhile
                assert _answers(old, vectors) == before
                rounds += 1
        finally:
            writer.join()
        assert not failures, failures
        assert rounds >= 1 and reports[0].generation == 2  # type: ignore[attr-defined]
        # Switched: the alias names generation 2's collection, and the reader of generation 1 still answers
        # exactly as before (its collection is kept: the previous generation, and leased).
        assert _alias(uri) == _generation(uri, 2)
        assert _answers(old, vectors) == before
        assert _generation(uri, 1) in _collections(uri)

    with open_store(uri) as new:  # a new reader gets generation 2, whose collection the alias names
        assert new.manifest.generation == 2
        assert new.milvus is not None and new.milvus.collection == _alias(uri)
        assert set(new.milvus.present()) == _ids(b)
        assert not any(new.chunks[r].page_name == DROPPED_PAGE for r, _ in new.dense(vectors[-1], 10))
    # Any client that searches the alias gets generation 2's rows.
    store = MilvusStore(uri)
    try:
        hits = store.client.search(store.name, data=[vectors[-1].tolist()], limit=20, output_fields=["id"],
                                   consistency_level="Strong")
    finally:
        store.close()
    assert hits[0] and {hit["id"] for hit in hits[0]} <= _ids(b)


def test_an_old_collection_is_dropped_only_once_no_reader_leases_its_generation(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
    base_encoder: object,
) -> None:
    a, b = corpora
    uri = f"{milvus_server.uri}/leased"
    vectors = _query_vectors(base_encoder)
    build_index(a, "base", uri, progress=False)
    reader = open_store(uri)  # holds a lease on generation 1
    try:
        before = _answers(reader, vectors)
        for corpus in (b, a):
            build_index(corpus, "base", uri, progress=False)
        # Generation 3 is current and 2 the previous one; 1 is neither, but a reader leases it.
        assert _collections(uri) == [_generation(uri, n) for n in (1, 2, 3)]
        assert _alias(uri) == _generation(uri, 3)
        assert _answers(reader, vectors) == before
    finally:
        reader.close()
    build_index(b, "base", uri, progress=False)
    assert _collections(uri) == [_generation(uri, 3), _generation(uri, 4)]
    assert EmbeddedStore(MilvusStore(uri).sidecar.root).generations() == [3, 4]
    assert _alias(uri) == _generation(uri, 4)


def test_a_build_that_fails_before_the_switch_leaves_the_alias_and_the_served_generation(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
) -> None:
    a, b = corpora
    relay = Relay(target=milvus_server.port).start()
    uri = f"{relay.uri}/failing"
    build_index(a, "base", uri, progress=False)
    relay.cut_after_upload(len(_ids(b)) * 384 * 4 // 2)  # half of generation 2's vectors get through
    with pytest.raises(StoreError, match=rf"Milvus at {uri}: upserting rows"):
        build_index(b, "base", uri, progress=False)
    relay = Relay(target=milvus_server.port, port=relay.port).start()  # the server is back
    try:
        assert _alias(uri) == _generation(uri, 1)
        assert EmbeddedStore(MilvusStore(uri).sidecar.root).generations() == [1]
        with open_store(uri) as reader:
            assert reader.manifest.generation == 1
            assert reader.milvus is not None and reader.milvus.collection == _generation(uri, 1)
            assert set(reader.milvus.present()) == _ids(a)
        resumed = build_index(b, "base", uri, progress=False)
        assert resumed.generation == 2 and _alias(uri) == _generation(uri, 2)
    finally:
        relay.cut()


def _legacy_store(uri: str, corpus: Path, encoder: Any) -> str:
    """A store as sitetune wrote it before generations had collections: one per model, no alias, a manifest
    naming none. Returns that collection's name."""
    from pymilvus import DataType

    chunks = list(Corpus.load(corpus).chunks)
    documents = [encoder.info.document(c) for c in chunks]
    hashes = [doc_hash(d) for d in documents]
    fingerprint = model_fingerprint(encoder.model_path)
    store = MilvusStore(uri)
    name = f"{store.name}_{fingerprint[:12]}"
    client = store.client
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=encoder.dim)
        schema.add_field("doc_hash", DataType.VARCHAR, max_length=64)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(name, schema=schema, index_params=params, consistency_level="Bounded")
        vectors = np.asarray(encoder.encode(documents), dtype=np.float32)
        client.upsert(name, [{"id": c.chunk_id, "vector": v.tolist(), "doc_hash": h}
                             for c, v, h in zip(chunks, vectors, hashes, strict=True)])
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    finally:
        store.close()
    manifest = Manifest(0, str(encoder.model_path), fingerprint, encoder.info.document_template, str(corpus),
                        corpus_hash(chunks), encoder.dim, len(chunks), DEFAULT_BM25_FIELDS)
    bm25 = BM25Index([c.chunk_id for c in chunks], [bm25_text(c) for c in chunks])
    with store.sidecar.lock():
        store.sidecar.write(manifest, chunks, hashes, None, bm25)
    manifest_file = store.sidecar.gen_dir(1) / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data.pop("collection", None)  # what an older sitetune wrote
    manifest_file.write_text(json.dumps(data))
    return name


def test_a_store_written_before_generation_collections_opens_and_its_first_reindex_migrates_it(
    milvus_server: MilvusServerProcess,  # noqa: F811
    corpora: tuple[Path, Path],
    env: dict[str, str],
    base_encoder: object,
) -> None:
    a, b = corpora
    uri = f"{milvus_server.uri}/legacy"
    legacy = _legacy_store(uri, a, base_encoder)
    vectors = _query_vectors(base_encoder)
    assert _collections(uri) == [legacy] and _alias(uri) is None
    with open_store(uri) as old:  # opens as it did, and keeps answering while the store migrates
        assert old.milvus is not None and old.milvus.collection == legacy
        before = _answers(old, vectors)
        report = build_index(b, "base", uri, progress=False)
        assert report.embedded == len(_ids(b) - _ids(a))  # the kept chunks' vectors came from the old collection
        assert _answers(old, vectors) == before
    assert _alias(uri) == _generation(uri, 2)
    assert _collections(uri) == sorted([legacy, _generation(uri, 2)])  # the previous generation's, kept
    with open_store(uri) as new:
        assert new.milvus is not None and new.milvus.collection == _generation(uri, 2)
        assert set(new.milvus.present()) == _ids(b)
    build_index(a, "base", uri, progress=False)
    assert _collections(uri) == [_generation(uri, 2), _generation(uri, 3)]
