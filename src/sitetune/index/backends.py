"""The vector-store protocol and its two implementations, chosen from the store URI in one place.

A store keeps generations: records, BM25 and a manifest (its identity: model fingerprint, corpus hash) always
in an :class:`~sitetune.index.store.EmbeddedStore` folder, and the vectors either in that folder too
(:class:`EmbeddedBackend`, the default) or in a Milvus collection per model (:class:`MilvusBackend`: Milvus
Lite for ``milvus://PATH.db``, a server for ``http://HOST:19530``). :func:`open_backend` is the only place
that tells them apart; :func:`~sitetune.index.build.build_index` and :class:`~sitetune.index.reader.StoreReader`
work through :class:`VectorStore`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sitetune.corpus import Chunk
from sitetune.index.ann import AnnIndex, min_vectors
from sitetune.index.milvus import MilvusStore, is_milvus_uri
from sitetune.index.store import EmbeddedStore, Generation, Manifest, StoreError
from sitetune.lexical import BM25Index

#: Encodes the documents of the given chunk rows; returns one unit float32 vector per row.
EncodeRows = Callable[[Sequence[int]], np.ndarray]


@dataclass(frozen=True)
class NewGeneration:
    """What a new generation holds besides its vectors.

    Attributes:
        manifest: The generation's identity (its number is filled in by the store).
        chunks: The corpus's unique chunks, in row order.
        doc_hashes: Hash of each chunk's document text (what the model embeds).
        bm25: The lexical index over ``chunks``.
    """

    manifest: Manifest
    chunks: Sequence[Chunk]
    doc_hashes: Sequence[str]
    bm25: BM25Index


@dataclass(frozen=True)
class WrittenGeneration:
    """What writing a generation did.

    Attributes:
        number: The generation written (now current).
        embedded: Rows encoded for it (new or changed documents); the others' vectors were kept.
        ann: The approximate index's manifest record, or ``None`` where the store searches exactly.
    """

    number: int
    embedded: int
    ann: dict[str, object] | None = None


class VectorStore(Protocol):
    """Where an index's generations and vectors live: written by ``build_index``, searched by ``StoreReader``."""

    uri: str

    def lock(self) -> AbstractContextManager[None]:
        """Exclusive writer lock around reading the previous generation and writing the next."""
        ...

    def previous(self) -> Generation | None:
        """The last intact generation (records and manifest), or ``None`` when there is none to reuse."""
        ...

    def write_generation(
        self, content: NewGeneration, encode: EncodeRows, check_queries: Callable[[], np.ndarray]
    ) -> WrittenGeneration:
        """Encode what the store does not hold yet (same model, same document text) and switch to a new generation.

        Args:
            content: Its manifest, chunks, document hashes and BM25 index.
            encode: Encodes the documents of the given rows.
            check_queries: Query vectors for an approximate index's recall check (called only if one is built).
        """
        ...

    def open_generation(self, generation: int | None = None) -> Generation:
        """Load the current generation (or exactly ``generation``) for search, under a reader lease.

        Raises StoreError when there is no usable index. The lease (``Generation.lease``) keeps a writer's
        prune off the generation until it is released (:meth:`StoreReader.close`).
        """
        ...

    def dense(
        self, generation: Generation, query: np.ndarray, k: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (row, cosine) for a unit query vector within ``rows`` (``None``: all); best first."""
        ...

    def close(self) -> None:
        """Release connections (a no-op where there are none)."""
        ...


def open_backend(store: str | Path, *, ann_min_vectors: int | None = None, progress: bool = False) -> VectorStore:
    """The vector store a URI names: ``milvus://PATH.db`` or ``http(s)://HOST:PORT`` is Milvus, else a folder.

    Args:
        store: The store URI or folder.
        ann_min_vectors: Embedded stores with at least this many chunks get an HNSW index (0: always);
            default ``SITETUNE_ANN_MIN_VECTORS``, else :data:`sitetune.index.ann.MIN_VECTORS`.
        progress: Say on stderr when an approximate index is being built.

    Raises:
        StoreError: The URI is malformed, or the folder path is a file.
    """
    uri = str(store)
    if is_milvus_uri(uri):
        return MilvusBackend(uri)
    return EmbeddedBackend(uri, ann_min_vectors=ann_min_vectors, progress=progress)


def _last_intact(store: EmbeddedStore) -> Generation | None:
    """The generation to reuse vectors from, or ``None`` (no index yet, or none intact: rebuild fully)."""
    if not store.exists():
        return None
    try:
        return store.load()
    except StoreError:
        return None


class EmbeddedBackend:
    """Vectors stored in the generation folder beside the records; exact search, HNSW from 50k chunks.

    Args:
        uri: The store folder.
        ann_min_vectors: See :func:`open_backend`.
        progress: See :func:`open_backend`.
    """

    def __init__(self, uri: str, *, ann_min_vectors: int | None = None, progress: bool = False) -> None:
        self.uri = uri
        self.store = EmbeddedStore(uri)
        if self.store.root.exists() and not self.store.root.is_dir():
            raise StoreError(f"store {uri} exists and is not a directory")
        self.ann_min_vectors = ann_min_vectors
        self.progress = progress
        self._previous: Generation | None = None

    def lock(self) -> AbstractContextManager[None]:
        """The store folder's writer lock."""
        return self.store.lock()

    def previous(self) -> Generation | None:
        """The last intact generation, vectors included (kept for :meth:`write_generation`)."""
        self._previous = _last_intact(self.store)
        return self._previous

    def write_generation(
        self, content: NewGeneration, encode: EncodeRows, check_queries: Callable[[], np.ndarray]
    ) -> WrittenGeneration:
        """Write every vector into a new generation: kept where model and text match, encoded for the rest."""
        manifest, chunks, doc_hashes = content.manifest, content.chunks, content.doc_hashes
        prev = self._previous
        # A vector is reusable when the same model embedded the same document text under the same id.
        old_rows: dict[tuple[str, str], int] = {}
        if prev is not None and prev.manifest.model_fingerprint == manifest.model_fingerprint:
            old_rows = {(c.chunk_id, h): i for i, (c, h) in enumerate(zip(prev.chunks, prev.doc_hashes, strict=True))}
        todo = [i for i, (c, h) in enumerate(zip(chunks, doc_hashes, strict=True)) if (c.chunk_id, h) not in old_rows]
        fresh = encode(todo)
        vectors = np.empty((len(chunks), manifest.dim), dtype=np.float32)
        if todo:
            vectors[todo] = fresh
        if prev is not None and prev.vectors is not None:
            keep = [
                (i, old_rows[(c.chunk_id, h)])
                for i, (c, h) in enumerate(zip(chunks, doc_hashes, strict=True))
                if (c.chunk_id, h) in old_rows
            ]
            if keep:
                new_idx, old_idx = map(list, zip(*keep, strict=True))
                vectors[new_idx] = prev.vectors[old_idx]
        # The previous ANN index still fits when this generation has the very same rows.
        same_rows = (
            prev is not None
            and not todo
            and len(prev.chunks) == len(chunks)
            and all(p.chunk_id == c.chunk_id for p, c in zip(prev.chunks, chunks, strict=True))
        )
        ann = self._approximate_index(vectors, prev.ann if same_rows and prev is not None else None, check_queries)
        number = self.store.write(manifest, chunks, doc_hashes, vectors, content.bm25, ann)
        return WrittenGeneration(number, len(todo), ann.info.to_dict() if ann is not None else None)

    def _approximate_index(
        self, vectors: np.ndarray, reusable: AnnIndex | None, queries: Callable[[], np.ndarray]
    ) -> AnnIndex | None:
        """The HNSW index a new generation gets.

        None below the threshold, the previous one if the vectors are the previous generation's, else a new
        one if it passes its recall check (on ``queries()``).
        """
        limit = min_vectors() if self.ann_min_vectors is None else self.ann_min_vectors
        if len(vectors) == 0 or len(vectors) < limit:
            return None
        if reusable is not None:
            return reusable
        if self.progress:
            print(f"building the HNSW index over {len(vectors):,} vectors ...", file=sys.stderr, flush=True)
        ann = AnnIndex.build(vectors, queries=queries())
        if self.progress:
            print(
                f"HNSW index built in {ann.info.build_seconds:.0f} s: recall@10 {ann.info.recall_at_10:.3f} "
                f"against exact search at efSearch {ann.info.ef_search}",
                file=sys.stderr,
                flush=True,
            )
        if not ann.info.usable:
            warnings.warn(
                f"the HNSW index reached recall@10 {ann.info.recall_at_10:.3f} < {ann.info.target}: "
                "the store keeps exact search",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return ann

    def open_generation(self, generation: int | None = None) -> Generation:
        """The current generation, or the newest intact one (with a warning); or exactly ``generation``."""
        loaded = self.store.load(generation, lease=True)
        if loaded.vectors is None:
            if loaded.lease is not None:
                loaded.lease.release()
            raise StoreError(f"store {self.uri} has no vectors")
        return loaded

    def dense(
        self, generation: Generation, query: np.ndarray, k: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """Exact search over the rows (HNSW over all rows where the generation has one)."""
        vectors = generation.vectors
        assert vectors is not None  # open_generation refuses a generation without them
        if rows is None and generation.ann is not None:
            return generation.ann.search(query, k)
        candidates = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
        if candidates.size == 0:
            return []
        scores = vectors[candidates] @ query.astype(np.float32) if rows is not None else vectors @ query
        k = min(k, candidates.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(candidates[i]), float(scores[i])) for i in top]

    def close(self) -> None:
        """Nothing to release."""
        return None


class MilvusBackend:
    """Vectors in a Milvus collection per model; records, BM25 and the manifest in a local sidecar folder.

    Args:
        uri: ``milvus://PATH.db`` (Milvus Lite) or ``http(s)://HOST:PORT[/COLLECTION]`` (a server).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        #: The Milvus collection and client behind the store (tests and tools inspect its rows).
        self.milvus = MilvusStore(uri)
        self._row_of: dict[str, int] = {}

    def lock(self) -> AbstractContextManager[None]:
        """The sidecar folder's writer lock."""
        return self.milvus.sidecar.lock()

    def previous(self) -> Generation | None:
        """The sidecar's last intact generation (records and manifest; no vectors)."""
        return _last_intact(self.milvus.sidecar)

    def write_generation(
        self, content: NewGeneration, encode: EncodeRows, check_queries: Callable[[], np.ndarray]
    ) -> WrittenGeneration:
        """Upsert the rows the model's collection lacks, switch the sidecar, then delete stale rows."""
        manifest, chunks, doc_hashes = content.manifest, content.chunks, content.doc_hashes
        # The model's own collection says which rows need no encoding: those it holds with the same
        # document text (this also resumes a run that died after writing some rows).
        self.milvus.use_model(manifest.model_fingerprint)
        present = self.milvus.present()
        todo = [i for i, (c, h) in enumerate(zip(chunks, doc_hashes, strict=True)) if present.get(c.chunk_id) != h]
        fresh = encode(todo)
        self.milvus.upsert([chunks[i].chunk_id for i in todo], [doc_hashes[i] for i in todo], fresh, dim=manifest.dim)
        number = self.milvus.sidecar.write(manifest, chunks, doc_hashes, None, content.bm25)
        self._clean_up(sorted(set(present) - {c.chunk_id for c in chunks}))
        return WrittenGeneration(number, len(todo))

    def _clean_up(self, stale: list[str]) -> None:
        """After the sidecar switched: delete rows no longer in the corpus and other models' collections.

        The new generation is already live and searches ignore rows it does not know, so a failure here is a
        warning, not an error: the next index run deletes what is left.
        """
        try:
            self.milvus.delete(stale)
            self.milvus.drop_other_models()
        except StoreError as exc:
            warnings.warn(f"the index is updated, but cleaning up old rows failed: {exc}", RuntimeWarning,
                          stacklevel=4)

    def open_generation(self, generation: int | None = None) -> Generation:
        """The sidecar's generation (or exactly ``generation``), with the model's collection loaded for search."""
        loaded = self.milvus.load(generation)
        try:
            self.milvus.use_model(loaded.manifest.model_fingerprint)
            if not self.milvus.has_collection():
                raise StoreError(
                    f"Milvus at {self.uri} has no collection '{self.milvus.collection}' for the model that built "
                    f"{self.milvus.sidecar.root}: run sitetune index"
                )
            self.milvus.load_collection()
        except BaseException:
            if loaded.lease is not None:
                loaded.lease.release()
            raise
        self._row_of = {c.chunk_id: i for i, c in enumerate(loaded.chunks)}
        return loaded

    def dense(
        self, generation: Generation, query: np.ndarray, k: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """Search the collection, within the rows' chunk ids if given."""
        # Only rows this generation knows are returned (the collection may hold rows of a newer one).
        allowed = None if rows is None else [generation.chunks[int(r)].chunk_id for r in rows]
        hits = self.milvus.search(query, k, allowed)
        return [(self._row_of[cid], s) for cid, s in hits if cid in self._row_of]

    def close(self) -> None:
        """Close the client (and Milvus Lite's server process)."""
        self.milvus.close()

