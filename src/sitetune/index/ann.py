"""Approximate nearest-neighbour search for large embedded stores: a faiss HNSW index inside a generation.

A store of at least :data:`MIN_VECTORS` chunks gets ``hnsw.faiss`` beside ``vectors.npy`` in each
generation (same crash-safe write, same checksums). Building it measures recall@10 against exact search
on up to :data:`RECALL_QUERIES` queries, raises efSearch until recall@10 reaches :data:`RECALL_TARGET`,
and records the outcome in the manifest (``ann``). :func:`sitetune.index.build_index` checks with real
query vectors: the store's own section titles and page names, encoded as the model encodes questions
(short texts a user might type, from the distribution the index will serve); without any, the check
uses noisy copies of stored vectors (cosine ~0.65 to their source, isotropic noise: a harsher test).
An index that cannot reach the target is not used: the store keeps exact search. Searches with a page
filter scan that page's rows exactly (a small subset).

Why faiss HNSW (``benchmarks/ann.py``, ``benchmarks/results/ann.md``): at 100k clustered 384-d vectors
(same M and efConstruction, 2 threads) faiss built in 65 s, hnswlib in 72 s, usearch in 275 s; faiss and
hnswlib then reach the same recall at the same efSearch in about the same time (0.988 recall@10 at
efSearch 256, ~0.65 ms), usearch was slower per query. faiss is maintained, was already the project's
benchmark library, and reads its index memory-mapped (``IO_FLAG_MMAP_IFC``), so several serving
processes share one copy; hnswlib has had no release since 2023 and loads its index into each process.
Below the threshold the store searches exactly: numpy scans 20k vectors in ~1 ms and 50k in ~3 ms,
about what encoding the question costs (1.8 ms p50), and a build would only add time to every index.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.environment import number_from_env
from sitetune.errors import SitetuneError

ANN_FILE = "hnsw.faiss"
#: Stores with at least this many chunks get an HNSW index (``SITETUNE_ANN_MIN_VECTORS`` overrides).
MIN_VECTORS = 50_000
MIN_VECTORS_ENV = "SITETUNE_ANN_MIN_VECTORS"
RECALL_TARGET = 0.98
RECALL_QUERIES = 500
#: Fewer given queries than this are topped up with noisy copies of stored vectors.
MIN_CHECK_QUERIES = 100
#: HNSW graph degree and build beam: faiss's usual defaults for 384-d text embeddings.
M = 16
EF_CONSTRUCTION = 128
#: efSearch values tried, smallest first, until recall@10 reaches the target.
EF_SEARCH_STEPS = (32, 64, 128, 256, 512, 1024)
#: Rows added to the index at a time: a memory-mapped file's pages are released after each block.
ADD_BLOCK = 65_536
# Noise added to a stored vector to make a query-like vector: |noise| = 1.17 gives cosine 0.65 to it.
_QUERY_NOISE = 1.17


def min_vectors() -> int:
    """The store size from which :func:`build_index` builds an ANN index (env override, else default)."""
    return number_from_env(MIN_VECTORS_ENV, MIN_VECTORS, int, lambda n: n >= 0,
                           "a whole number of vectors (0: always)")


def build_threads() -> int:
    """Threads for building an index: ``OMP_NUM_THREADS`` where set (a shared machine's cap), else every CPU."""
    try:
        requested = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        requested = 0
    return requested if requested > 0 else os.cpu_count() or 1


@dataclass(frozen=True)
class AnnInfo:
    """What the manifest records about a generation's ANN index.

    Attributes:
        library: ``"faiss"``.
        version: The library version that built it.
        kind: The index type (``"IndexHNSWFlat"``, inner product).
        file: Its file in the generation.
        m: HNSW graph degree.
        ef_construction: Build beam width.
        ef_search: Search beam width chosen by the recall check (at least ``k`` at query time).
        recall_at_10: Mean recall@10 against exact search at ``ef_search`` on the check's queries.
        recall_at_100: Mean recall@100 at ``max(ef_search, 100)`` (what the hybrid search's dense ranking
            asks for: its ``candidates`` default is 100).
        recall_queries: How many query-like vectors the check used.
        target: The recall@10 the index had to reach to be used.
        build_seconds: Wall time of building and checking.
    """

    library: str
    version: str
    kind: str
    file: str
    m: int
    ef_construction: int
    ef_search: int
    recall_at_10: float
    recall_at_100: float
    recall_queries: int
    target: float
    build_seconds: float

    @property
    def usable(self) -> bool:
        """Whether the recall check passed."""
        return self.recall_at_10 >= self.target

    def to_dict(self) -> dict[str, Any]:
        """The manifest record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnInfo:
        """Read a manifest record (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        raise SitetuneError("approximate search needs faiss: pip install faiss-cpu") from exc
    return faiss


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` row ids per query, best first.

    Blocked so that a block's scores and partition indices stay ~64 MB: 64 queries at a time up to 65k
    vectors, fewer above (4 at 1M, where 64 cost ~1 GB of transient memory at the build's peak).
    """
    out = np.empty((len(queries), k), dtype=np.int64)
    block = max(1, min(64, (1 << 22) // max(len(vectors), 1)))
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + block] = np.take_along_axis(top, order, axis=1)
    return out


def _add_in_blocks(index: Any, vectors: np.ndarray) -> None:
    """Add ``vectors`` to ``index`` block by block, holding one copy of them: faiss's.

    ``vectors`` is usually the generation's ``vectors.npy`` memory-mapped; pages read from a mapping count
    in the process's resident memory until it is unmapped, so without the release below a 1M x 256
    build held the vectors twice (the mapping's pages and faiss's storage).
    """
    mapped = getattr(vectors, "_mmap", None)  # np.memmap, as np.load(mmap_mode="r") returns
    for start in range(0, len(vectors), ADD_BLOCK):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_BLOCK], dtype=np.float32))
        if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapped.madvise(mmap.MADV_DONTNEED)  # read-only file pages: dropped here, still in the page cache


def _stored_vectors(index: Any) -> np.ndarray:
    """A read-only view of the vectors an ``IndexHNSWFlat`` holds (no copy)."""
    faiss = _faiss()
    storage = faiss.downcast_index(index.storage)
    view: np.ndarray = faiss.rev_swig_ptr(storage.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
    view.flags.writeable = False
    return view


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]))


def query_like(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors near random stored vectors (cosine ~0.65), as questions are to their answers."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    noise = rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32)
    noise *= _QUERY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    queries: np.ndarray = np.asarray(vectors[rows], dtype=np.float32) + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries


class AnnIndex:
    """A faiss HNSW index over a generation's vectors (row i of ``vectors.npy`` is id i).

    Build one with :meth:`build`; open a generation's with :meth:`load`.
    """

    def __init__(self, index: Any, info: AnnInfo) -> None:
        self.index = index
        self.info = info

    @classmethod
    def build(
        cls, vectors: np.ndarray, *, queries: np.ndarray | None = None, threads: int | None = None, seed: int = 0
    ) -> AnnIndex:
        """Build the index and run the recall check (see the module docstring).

        Args:
            vectors: (n, dim) float32 unit rows.
            queries: Unit query vectors for the recall check (the first :data:`RECALL_QUERIES` are used;
                fewer than :data:`MIN_CHECK_QUERIES` are topped up with :func:`query_like` copies of stored
                vectors, which are also the default).
            threads: Build threads (default: :func:`build_threads`).
            seed: Seed of the default queries.

        Returns:
            The index; ``info.usable`` says whether it reached :data:`RECALL_TARGET`.
        """
        faiss = _faiss()
        started = time.perf_counter()
        index = faiss.IndexHNSWFlat(vectors.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        faiss.omp_set_num_threads(threads or build_threads())
        try:
            _add_in_blocks(index, vectors)
            data = _stored_vectors(index)  # the check reads faiss's copy, not the file's pages again
            given = np.zeros((0, data.shape[1]), np.float32) if queries is None else queries[:RECALL_QUERIES]
            if len(given) < MIN_CHECK_QUERIES:  # too few for a recall estimate: top up with noisy copies
                given = np.concatenate([given, query_like(data, RECALL_QUERIES - len(given), seed)])
            queries = np.ascontiguousarray(given, dtype=np.float32)
            k10, k100 = min(10, len(data)), min(100, len(data))
            truth = _exact_top(data, queries, k100)
            ef_search, recall10 = EF_SEARCH_STEPS[-1], 0.0
            for ef in EF_SEARCH_STEPS:
                index.hnsw.efSearch = ef
                recall10 = _recall(index.search(queries, k10)[1], truth[:, :k10])
                if recall10 >= RECALL_TARGET:
                    ef_search = ef
                    break
            index.hnsw.efSearch = max(ef_search, k100)
            recall100 = _recall(index.search(queries, k100)[1], truth)
        finally:
            faiss.omp_set_num_threads(1)  # searches run one query at a time per process
        info = AnnInfo(
            library="faiss",
            version=str(faiss.__version__),
            kind="IndexHNSWFlat",
            file=ANN_FILE,
            m=M,
            ef_construction=EF_CONSTRUCTION,
            ef_search=ef_search,
            recall_at_10=round(recall10, 4),
            recall_at_100=round(recall100, 4),
            recall_queries=len(queries),
            target=RECALL_TARGET,
            build_seconds=round(time.perf_counter() - started, 2),
        )
        return cls(index, info)

    def save(self, path: Path) -> None:
        """Write the index file (the caller fsyncs it with the rest of the generation)."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, info: AnnInfo) -> AnnIndex:
        """Open an index file memory-mapped (processes that open one generation share its pages)."""
        faiss = _faiss()
        faiss.omp_set_num_threads(1)
        return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), info)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top ``k`` (row, inner product) for a unit query vector, best first."""
        k = min(k, len(self))
        if k <= 0:
            return []
        params = self._params(max(self.info.ef_search, k))
        scores, ids = self.index.search(np.asarray(query, dtype=np.float32)[None, :], k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    @staticmethod
    def _params(ef: int) -> Any:
        # Per-call parameters: one loaded index may serve concurrent searches with different k.
        params = _faiss().SearchParametersHNSW()
        params.efSearch = ef
        return params
