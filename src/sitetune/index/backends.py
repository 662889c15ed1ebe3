"""The vector-store protocol and its two implementations, chosen from the store URI in one place.

A store keeps generations: records, BM25 and a manifest (its identity: model fingerprint, corpus hash) always
in an :class:`~sitetune.index.store.EmbeddedStore` folder, and the vectors either in that folder too
(:class:`EmbeddedBackend`, the default) or in a Milvus collection per generation (:class:`MilvusBackend`: Milvus
Lite for ``milvus://PATH.db``, a server for ``http://HOST:19530``). :func:`open_backend` is the only place
that tells them apart; :func:`~sitetune.index.build.build_index` and :class:`~sitetune.index.reader.StoreReader`
work through :class:`VectorStore`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
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
    """Vectors in a Milvus collection per generation; records, BM25 and the manifest in a local sidecar folder.

    A reader searches the collection its sidecar generation's manifest names, not the alias: a server
    switches when the sidecar's ``CURRENT`` moves (``serve`` follows it), so records, page list and
    vectors always come from one generation; through the alias its dense search would see the next
    generation's vectors from the moment the alias moves until it reloads. The alias is for other clients.

    Args:
        uri: ``milvus://PATH.db`` (Milvus Lite) or ``http(s)://HOST:PORT[/COLLECTION]`` (a server).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        #: The Milvus collections and client behind the store (tests and tools inspect its rows).
        self.milvus = MilvusStore(uri)
        self._row_of: dict[str, int] = {}
        self._previous: Generation | None = None

    def lock(self) -> AbstractContextManager[None]:
        """The sidecar folder's writer lock."""
        return self.milvus.sidecar.lock()

    def previous(self) -> Generation | None:
        """The sidecar's last intact generation (records and manifest; no vectors)."""
        self._previous = _last_intact(self.milvus.sidecar)
        return self._previous

    def write_generation(
        self, content: NewGeneration, encode: EncodeRows, check_queries: Callable[[], np.ndarray]
    ) -> WrittenGeneration:
        """Fill and check the next generation's collection, commit the sidecar, move the alias, drop the unused.

        Until the sidecar commits, nothing a reader uses has changed: a failure leaves the previous
        generation served and the alias where it was.
        """
        milvus, manifest = self.milvus, content.manifest
        chunks, doc_hashes = content.chunks, content.doc_hashes
        wanted = {c.chunk_id: h for c, h in zip(chunks, doc_hashes, strict=True)}
        number = milvus.sidecar.next_number()
        prev = self._previous
        source = None  # the previous generation's collection, whose vectors this model can reuse
        if prev is not None and prev.manifest.model_fingerprint == manifest.model_fingerprint:
            source = milvus.collection_of(prev.manifest)
            if not milvus.has_collection(source):
                source = None
        if source is not None and prev is not None and source == prev.manifest.collection \
                and milvus.present(source) == wanted:
            # Nothing changed (same model, rows and texts): the new generation names the same collection.
            collection, embedded = source, 0
        else:
            collection = milvus.generation_collection(number)
            embedded = self._fill(collection, content, source, encode)
        milvus.check(collection, len(chunks), chunks[0].chunk_id if chunks else None)
        written = milvus.sidecar.write(
            replace(manifest, collection=collection), chunks, doc_hashes, None, content.bm25
        )
        if written != number:  # under the writer lock nothing else numbers generations
            raise StoreError(f"store {self.uri}: wrote generation {written}, expected {number}")
        self._after_switch(collection)
        return WrittenGeneration(number, embedded)

    def _fill(
        self, collection: str, content: NewGeneration, source: str | None, encode: EncodeRows
    ) -> int:
        """Write every row of the new generation into ``collection``; returns the rows encoded.

        A collection left by a run that failed before its switch is resumed when the same model made it
        (its rows with the same document text are kept); vectors of unchanged chunks are copied from
        ``source``; the rest are encoded.
        """
        milvus, manifest = self.milvus, content.manifest
        chunks, doc_hashes = content.chunks, content.doc_hashes
        pending: dict[str, str] = {}
        if milvus.has_collection(collection):
            if milvus.fingerprint_of(collection) == manifest.model_fingerprint:
                pending = milvus.present(collection)
            else:  # another model's, or a server that keeps no description: start afresh
                milvus.drop(collection)
        if not milvus.has_collection(collection):
            milvus.create(collection, manifest.dim, manifest.model_fingerprint)
        need = [i for i, (c, h) in enumerate(zip(chunks, doc_hashes, strict=True)) if pending.get(c.chunk_id) != h]
        copied = milvus.fetch(source, [chunks[i].chunk_id for i in need]) if source and need else {}
        vectors = np.empty((len(need), manifest.dim), dtype=np.float32)
        todo: list[int] = []  # positions in ``need`` to encode
        for pos, i in enumerate(need):
            found = copied.get(chunks[i].chunk_id)
            if found is not None and found[0] == doc_hashes[i]:
                vectors[pos] = found[1]
            else:
                todo.append(pos)
        if todo:
            vectors[todo] = encode([need[pos] for pos in todo])
        milvus.upsert(collection, [chunks[i].chunk_id for i in need], [doc_hashes[i] for i in need], vectors)
        milvus.delete(collection, sorted(set(pending) - {c.chunk_id for c in chunks}))
        return len(todo)

    def _after_switch(self, collection: str) -> None:
        """After the sidecar switched: point the alias at ``collection``, drop collections no generation names.

        The sidecar's prune has already kept the previous generation and every generation a reader leases
        (see :mod:`sitetune.index.lease`); only a writer removes generation folders, and this one holds the
        writer lock, so the collections of the folders left are exactly those a reader may still use. The
        new generation is live already, so a failure here is a warning, not an error: the next index run
        moves the alias and drops what is left.
        """
        milvus = self.milvus
        try:
            milvus.switch_alias(collection)
            named = {collection}
            for gen in milvus.sidecar.generations():
                try:
                    named.add(milvus.collection_of(milvus.sidecar.read_manifest(gen)))
                except StoreError:
                    continue  # an unreadable generation cannot be opened: its collection is nobody's
            for name in milvus.store_collections():
                if name not in named:
                    milvus.drop(name)
        except StoreError as exc:
            warnings.warn(
                f"the index is updated, but moving the alias or dropping old collections failed: {exc}",
                RuntimeWarning,
                stacklevel=4,
            )

    def open_generation(self, generation: int | None = None) -> Generation:
        """The sidecar's generation (or exactly ``generation``), with the collection it names loaded for search."""
        loaded = self.milvus.load(generation)
        try:
            self.milvus.use(self.milvus.collection_of(loaded.manifest))
            if not self.milvus.has_collection():
                raise StoreError(
                    f"Milvus at {self.uri} has no collection '{self.milvus.collection}' for generation "
                    f"{loaded.manifest.generation} of {self.milvus.sidecar.root}: run sitetune index"
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
        """Search the generation's collection, within the rows' chunk ids if given."""
        # Only rows this generation knows are returned: a generation's own collection holds exactly those,
        # but a per-model collection of a store written before may hold rows an interrupted run upserted.
        allowed = None if rows is None else [generation.chunks[int(r)].chunk_id for r in rows]
        hits = self.milvus.search(query, k, allowed)
        return [(self._row_of[cid], s) for cid, s in hits if cid in self._row_of]

    def close(self) -> None:
        """Close the client (and Milvus Lite's server process)."""
        self.milvus.close()

