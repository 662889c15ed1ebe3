"""Approximate search in the embedded store: the HNSW index, its recall check, and its place in generations."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sitetune.corpus import Corpus
from sitetune.index import EmbeddedStore, build_index, open_store
from sitetune.index import ann as ann_module
from sitetune.index.ann import ANN_FILE, AnnIndex, min_vectors
from sitetune.recordio import write_records

PAGES = ("Deadlines", "MSc in Business Administration and Philosophy", "Exemptions")


def clustered(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors around ~n/100 topic centres (cosine ~0.7 within a topic), like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 100), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    x = 0.75 * centres[rng.integers(0, len(centres), n)] + 0.55 * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ query
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def test_recall_check_measures_what_independent_queries_see() -> None:
    vectors = clustered(5000)
    ann = AnnIndex.build(vectors, threads=1)
    info = ann.info
    assert info.usable and info.recall_at_10 >= 0.98 and info.ef_search in ann_module.EF_SEARCH_STEPS
    assert info.recall_queries == ann_module.RECALL_QUERIES and info.library == "faiss"
    # Fresh query-like vectors (another seed) reach about the recall the check recorded.
    queries = ann_module.query_like(vectors, 200, seed=7)
    hits = [len(set(exact(vectors, q, 10)) & {r for r, _ in ann.search(q, 10)}) / 10 for q in queries]
    assert np.mean(hits) >= info.recall_at_10 - 0.02
    # Scores are the inner products, best first; asking for more than there is returns all.
    top = ann.search(queries[0], 5)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert np.allclose([s for _, s in top], [float(vectors[r] @ queries[0]) for r, _ in top], atol=1e-5)
    small = AnnIndex.build(vectors[:7], threads=1)
    assert sorted(r for r, _ in small.search(queries[0], 50)) == list(range(7))


def test_threshold_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert min_vectors() == ann_module.MIN_VECTORS
    monkeypatch.setenv("SITETUNE_ANN_MIN_VECTORS", "0")
    assert min_vectors() == 0
    monkeypatch.setenv("SITETUNE_ANN_MIN_VECTORS", "many")
    with pytest.raises(Exception, match="SITETUNE_ANN_MIN_VECTORS"):
        min_vectors()


@pytest.fixture(scope="module")
def corpus_slice(cbs_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ann") / "slice.jsonl"
    write_records([r for r in cbs_corpus.records if r.page_name in PAGES], path)
    return path


@pytest.mark.slow
def test_store_with_an_ann_index_persists_it_in_generations_and_searches_with_it(
    corpus_slice: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    small = build_index(corpus_slice, "base", tmp_path / "exact", progress=False)
    assert small.ann is None and not (tmp_path / "exact" / "gen-000001" / ANN_FILE).exists()  # below threshold

    first = build_index(corpus_slice, "base", store, progress=False, ann_min_vectors=0)
    assert first.ann is not None and first.ann["recall_at_10"] >= 0.98
    # The check ran on the corpus's own section titles and page names, encoded as questions.
    chunks = Corpus.load(corpus_slice).chunks
    names = {n for c in chunks for n in (c.section_title, c.page_name) if n.strip()}
    # A small corpus has few names: topped up with noisy copies (at most one per stored vector).
    assert len(names) < ann_module.MIN_CHECK_QUERIES
    assert first.ann["recall_queries"] == len(names) + min(ann_module.RECALL_QUERIES - len(names), len(chunks))
    manifest = json.loads((store / "gen-000001" / "manifest.json").read_text())
    assert manifest["ann"]["file"] == ANN_FILE and manifest["ann"]["recall_at_10"] == first.ann["recall_at_10"]
    assert ANN_FILE in manifest["files"]  # checksummed like every file of the generation
    with open_store(store) as reader:
        assert reader.generation.ann is not None and len(reader.generation.ann) == len(reader.chunks)
        vectors = np.asarray(reader.generation.vectors)
        for row in (0, 5, len(vectors) - 1):
            query = ann_module.query_like(vectors[row : row + 1], 1, seed=row)[0]
            assert [r for r, _ in reader.dense(query, 10)] == exact(vectors, query, 10)
        # A page filter scans that page's rows exactly.
        rows = np.arange(0, len(vectors), 3)
        query = vectors[1]
        assert [r for r, _ in reader.dense(query, 5, rows)] == [int(rows[i]) for i in exact(vectors[rows], query, 5)]

    # Nothing changed: the same index is kept (not rebuilt); the file is byte-identical.
    second = build_index(corpus_slice, "base", store, progress=False, ann_min_vectors=0)
    assert second.embedded == 0 and second.ann == first.ann
    one, two = (store / f"gen-00000{g}" / ANN_FILE for g in (1, 2))
    assert one.read_bytes() == two.read_bytes()

    # A damaged index file fails its checksum: the previous generation is used, with a warning.
    data = bytearray(two.read_bytes())
    data[len(data) // 2] ^= 0xFF
    two.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="checksum mismatch"), open_store(store) as reader:
        assert reader.manifest.generation == 1 and reader.generation.ann is not None


@pytest.mark.slow
def test_an_index_that_misses_the_recall_target_is_not_used(
    corpus_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann_module, "RECALL_TARGET", 1.01)  # unreachable: recall is at most 1
    with pytest.warns(RuntimeWarning, match="keeps exact search"):
        report = build_index(corpus_slice, "base", tmp_path / "store", progress=False, ann_min_vectors=0)
    assert report.ann is None
    assert EmbeddedStore(tmp_path / "store").load().ann is None
    assert not (tmp_path / "store" / "gen-000001" / ANN_FILE).exists()
    shutil.rmtree(tmp_path / "store")


def _mapped_rss_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header: address range ... path
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="reads the process's mappings from /proc")
def test_a_memory_mapped_build_holds_one_copy_of_the_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vectors.npy"
    np.save(path, clustered(6000, dim=64))
    vectors = np.load(path, mmap_mode="r")
    monkeypatch.setattr(ann_module, "ADD_BLOCK", 1000)  # six blocks
    ann = AnnIndex.build(vectors, threads=1)
    # Every row went in, in order, and the file's pages were let go: faiss's copy is the only one held.
    assert len(ann) == len(vectors)
    assert np.array_equal(ann_module._stored_vectors(ann.index), vectors)
    del ann
    reread = _mapped_rss_kib(path)  # the comparison above read the whole file again
    vectors._mmap.madvise(ann_module.mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
    assert reread >= 6000 * 64 * 4 // 1024 - 8  # the smaps reading sees a fully read mapping...
    ann = AnnIndex.build(vectors, threads=1)
    assert _mapped_rss_kib(path) <= 1000 * 64 * 4 // 1024 + 8  # ...and after a build, at most a block's pages
    assert ann.info.recall_queries > 0
