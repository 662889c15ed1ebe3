"""The streaming build of an embedded store: same store as the in-memory parts, resumable after SIGKILL.

Real parts throughout: the sample site crawled to CSV, the packaged base model, bm25s, subprocesses of the
CLI killed with SIGKILL (through :data:`sitetune.index.stream.batch_hook`, so the kill lands after a known
number of batches).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sitetune.config import CrawlConfig
from sitetune.corpus import Corpus
from sitetune.index import EmbeddedStore, bm25_text, build_index, open_store
from sitetune.index.identity import corpus_hash, doc_hash
from sitetune.index.store import BUILD_DIR
from sitetune.index.stream import PROGRESS_FILE
from sitetune.lexical import BM25Index, BM25Writer
from sitetune.recordio import write_records

# Runs the CLI with a hook that SIGKILLs the process once it has checkpointed argv[1] batches.
_KILL_AFTER_BATCHES = """
import os, signal, sys
import sitetune.index.stream as stream
after = int(sys.argv.pop(1))
def kill(batches):
    if batches >= after:
        os.kill(os.getpid(), signal.SIGKILL)
stream.batch_hook = kill
from sitetune.cli.main import app
app(prog_name="sitetune")
"""
QUERIES = ("application deadline", "tuition fees", "admission requirements", "scholarship", "exchange semester")


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sitetune.crawl import crawl_folder, sample_site_dir

    path = tmp_path_factory.mktemp("sample") / "corpus.csv"
    fast = CrawlConfig(delay_s=0.0, backoff_s=0.05, max_backoff_s=0.1, timeout_s=5.0)
    crawl_folder(sample_site_dir(), path, config=fast, progress=False)
    return path


@pytest.fixture(scope="module")
def half_csv(sample_csv: Path) -> Path:
    """The sample site's first half of pages: the previous generation of a re-index."""
    corpus = Corpus.load(sample_csv)
    pages = set(corpus.pages[: len(corpus.pages) // 2])
    return write_records_to(sample_csv.parent / "half.csv", [r for r in corpus.records if r.page_name in pages])


def write_records_to(path: Path, records: list) -> Path:  # type: ignore[type-arg]
    write_records(records, path)
    return path


def _index(corpus: Path, store: Path, *extra: str, kill_after: int | None = None) -> subprocess.CompletedProcess[str]:
    launch = ["-m", "sitetune.cli.main"] if kill_after is None else ["-c", _KILL_AFTER_BATCHES, str(kill_after)]
    return subprocess.run(
        [sys.executable, *launch, "index", "--corpus", str(corpus), "--store", str(store), "--no-progress",
         "--json", *extra],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _snapshot(store: Path) -> dict[str, object]:
    """What a store holds, comparable across builds: chunks, hashes, vectors, manifest identity, BM25 rankings."""
    with open_store(store) as reader:
        gen = reader.generation
        assert gen.vectors is not None
        return {
            "chunks": list(reader.chunks),
            "hashes": list(gen.doc_hashes),
            "vectors": np.array(gen.vectors),
            "corpus_hash": reader.manifest.corpus_hash,
            "count": reader.manifest.count,
            "bm25": {q: reader.bm25.search(q, 10) for q in QUERIES},
        }


def _assert_same(got: dict[str, object], want: dict[str, object], atol: float = 1e-6) -> None:
    """Same chunks, hashes, identity and BM25 rankings; vectors within ``atol`` (None: cosine >= 0.999)."""
    assert got["chunks"] == want["chunks"]
    assert got["hashes"] == want["hashes"]
    assert got["corpus_hash"] == want["corpus_hash"] and got["count"] == want["count"]
    a, b = np.asarray(got["vectors"]), np.asarray(want["vectors"])
    assert a.shape == b.shape
    if atol is None:  # encoded in other batches: bf16 rounding differs with the padding
        assert float(np.min(np.sum(a * b, axis=1))) >= 0.999
    else:
        np.testing.assert_allclose(a, b, atol=atol)
    for q in QUERIES:
        g, w = got["bm25"][q], want["bm25"][q]  # type: ignore[index]
        assert [i for i, _ in g] == [i for i, _ in w], q
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], rtol=1e-6)


def test_streaming_build_holds_what_the_in_memory_parts_give(
    sample_csv: Path, tmp_path: Path, base_encoder: object
) -> None:
    corpus = Corpus.load(sample_csv)
    assert len(corpus.records) > len(corpus.chunks)  # the site repeats a text: dedup across batches is tested
    report = build_index(sample_csv, "base", tmp_path / "store", progress=False, checkpoint_rows=7)
    assert (report.chunks, report.embedded, report.reused, report.resumed) == (len(corpus.chunks),) * 2 + (0, 0)
    got = _snapshot(tmp_path / "store")

    # The reference: every part built in memory, as the index was built before streaming.
    chunks = list(corpus.chunks)
    documents = [base_encoder.info.document(c) for c in chunks]  # type: ignore[attr-defined]
    bm25 = BM25Index([c.chunk_id for c in chunks], [bm25_text(c) for c in chunks])
    want = {
        "chunks": chunks,
        "hashes": [doc_hash(d) for d in documents],
        # Encoded in the build's batches of 7 (bf16 results depend on the batch's padding).
        "vectors": np.concatenate([base_encoder.encode(documents[i : i + 7])  # type: ignore[attr-defined]
                                   for i in range(0, len(documents), 7)]),
        "corpus_hash": corpus_hash(chunks),
        "count": len(chunks),
        "bm25": {q: bm25.search(q, 10) for q in QUERIES},
    }
    assert any(want["bm25"].values())
    _assert_same(got, want)
    # A corpus in memory takes the same path (not resumable: no file to identify it by).
    build_index(corpus, "base", tmp_path / "from-memory", progress=False, checkpoint_rows=7)
    _assert_same(_snapshot(tmp_path / "from-memory"), got)
    assert not (tmp_path / "store" / BUILD_DIR).exists()


def test_killed_build_resumes_and_the_previous_generation_stays_searchable(
    sample_csv: Path, half_csv: Path, tmp_path: Path
) -> None:
    store, reference = tmp_path / "store", tmp_path / "reference"
    # Uninterrupted builds run in this process: only the killed ones and the resume need the CLI's own.
    build_index(sample_csv, "base", reference, progress=False, checkpoint_rows=8)
    build_index(half_csv, "base", store, progress=False, checkpoint_rows=8)
    half_ids = {c.chunk_id for c in Corpus.load(half_csv).chunks}

    # Killed after 2 batches, then after 2 more of the rest: each run leaves a partial generation behind.
    for kills in (1, 2):
        killed = _index(sample_csv, store, "--checkpoint-rows", "8", kill_after=2)
        assert killed.returncode == -9, killed.stderr
        progress = json.loads((store / BUILD_DIR / PROGRESS_FILE).read_text())
        assert progress["rows"] == 16 * kills
        assert EmbeddedStore(store).generations() == [1]
        with open_store(store) as reader:  # the previous generation: untouched, and what a search opens
            assert {c.chunk_id for c in reader.chunks} == half_ids
            assert reader.bm25.search("tuition fees", 3) is not None

    finished = _index(sample_csv, store, "--checkpoint-rows", "8")
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["resumed"] == 32 and report["generation"] == 2
    # The chunks of the previous generation were reused, not encoded, in whichever run reached them.
    assert report["embedded"] == report["chunks"] - len(half_ids)
    _assert_same(_snapshot(store), _snapshot(reference), atol=None)
    assert not (store / BUILD_DIR).exists()
    assert not [p for p in store.iterdir() if p.name.startswith(".gen-")]


def test_a_killed_build_of_another_corpus_is_not_resumed(sample_csv: Path, half_csv: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert _index(sample_csv, store, "--checkpoint-rows", "8", kill_after=2).returncode == -9
    assert build_index(half_csv, "base", store, progress=False, checkpoint_rows=8).resumed == 0
    with open_store(store) as reader:
        assert {c.chunk_id for c in reader.chunks} == {c.chunk_id for c in Corpus.load(half_csv).chunks}


def test_kill_after_the_last_batch_resumes_at_the_commit(sample_csv: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    chunks = len(Corpus.load(sample_csv).chunks)
    batches = -(-chunks // 16)
    assert _index(sample_csv, store, "--checkpoint-rows", "16", kill_after=batches).returncode == -9
    assert not EmbeddedStore(store).exists()
    report = build_index(sample_csv, "base", store, progress=False, checkpoint_rows=16)
    assert report.resumed == chunks and report.chunks == chunks


def test_a_bad_row_mid_file_names_it_and_leaves_no_partial(sample_csv: Path, half_csv: Path, tmp_path: Path) -> None:
    from sitetune.errors import InputError, SitetuneError

    store = tmp_path / "store"
    build_index(half_csv, "base", store, progress=False)
    records = Corpus.load(sample_csv).records
    bad = tmp_path / "bad.csv"
    # A row whose text is empty, after enough rows for two batches to be written.
    with open(bad, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["url", "page_name", "section_title", "section_type", "text_chunk"])
        rows = [[r.url, r.page_name, r.section_title, r.section_type, r.text] for r in records]
        writer.writerows([*rows[:40], ["https://x.test/", "Page", "Title", "Title", ""], *rows[40:]])
    with pytest.raises(InputError, match=r"bad\.csv, line \d+, field 'text_chunk': empty text"):
        build_index(bad, "base", store, progress=False, checkpoint_rows=8)
    assert not (store / BUILD_DIR).exists()
    assert not [p for p in store.iterdir() if p.name.startswith(".gen-")]
    assert EmbeddedStore(store).generations() == [1]
    with pytest.raises(SitetuneError, match="checkpoint rows must be at least 1"):
        build_index(half_csv, "base", store, progress=False, checkpoint_rows=0)


def test_bm25_writer_builds_the_bm25s_index_in_parts_and_resumes(cbs_corpus: Corpus, tmp_path: Path) -> None:
    ids = [c.chunk_id for c in cbs_corpus.chunks]
    texts = [c.text for c in cbs_corpus.chunks]
    reference = BM25Index(ids, texts)
    writer = BM25Writer(tmp_path / "work")
    writer.add(ids[:300], texts[:300])
    state = writer.checkpoint()
    writer.add(ids[300:400], texts[300:400])  # lost: the "kill" comes before the next checkpoint
    writer.close()
    writer = BM25Writer(tmp_path / "work", state)
    for start in range(300, len(ids), 100):
        writer.add(ids[start : start + 100], texts[start : start + 100])
    writer.finish(tmp_path / "bm25", part_pairs=5_000)  # many passes over the postings
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.ids == ids
    for query in (*QUERIES, "legal claim", "non-EU citizens", "zzzz"):
        np.testing.assert_array_equal(loaded.scores(query), reference.scores(query))
        assert loaded.search(query, 10) == reference.search(query, 10)


def test_a_build_killed_inside_its_commit_resumes_to_a_loadable_generation(
    sample_csv: Path, half_csv: Path, tmp_path: Path
) -> None:
    """Killed after the commit wrote the manifest into the partial generation, the resumed build commits a
    generation that passes its own checksums (the stale manifest was once listed as one of its files)."""
    from sitetune.index.crashcheck import _run, check_store

    store = tmp_path / "store"
    build_index(half_csv, "base", store, progress=False)
    assert _run(sample_csv, store, kill_after=None, kill_at_step="files-written")  # killed mid-commit
    assert any(store.glob(".gen-*.tmp/manifest.json"))  # the killed commit's manifest is in the partial
    assert build_index(sample_csv, "base", store, progress=False).resumed > 0
    corpora = {"half": Corpus.load(half_csv), "whole": Corpus.load(sample_csv)}
    found, fell_back, problems = check_store(store, corpora)
    assert (found, fell_back, problems) == ("whole", False, [])
    EmbeddedStore(store).verify(EmbeddedStore(store).current() or 0)
