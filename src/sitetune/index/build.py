"""Building and incrementally updating an index from a corpus file."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.corpus import Chunk, Corpus
from sitetune.encode import Encoder, load_encoder
from sitetune.errors import SitetuneError
from sitetune.index import ann as ann_module
from sitetune.index.ann import AnnIndex, min_vectors
from sitetune.index.identity import corpus_hash, doc_hash, model_fingerprint
from sitetune.index.milvus import MilvusStore, is_milvus_uri
from sitetune.index.store import EmbeddedStore, Generation, Manifest, StoreError
from sitetune.lexical import BM25Index

#: What the BM25 index matches: page name, section title and text. Names and titles carry the words
#: questions use ("Deadlines", "Supply Chain Management"): BM25 alone scores nDCG@10 0.478 on the reference
#: questions with them, 0.447 with the title only, 0.416 with the text only.
DEFAULT_BM25_FIELDS = "page+title+text"
BM25_FIELDS = ("page+title+text", "title+text", "text")


def bm25_text(chunk: Chunk, fields: str = DEFAULT_BM25_FIELDS) -> str:
    """The text BM25 indexes for a chunk: its home page name and section title, then the text (or less)."""
    if fields == "page+title+text":
        return f"{chunk.page_name}\n{chunk.section_title}\n{chunk.text}"
    if fields == "title+text":
        return f"{chunk.section_title}\n{chunk.text}"
    if fields == "text":
        return chunk.text
    raise SitetuneError(f"unknown BM25 fields '{fields}' (use one of: {', '.join(BM25_FIELDS)})")


@dataclass(frozen=True)
class IndexReport:
    """What ``sitetune index`` did.

    Attributes:
        store: The store URI.
        generation: The generation written.
        chunks: Unique chunks indexed.
        embedded: Chunks encoded this run (new or changed).
        reused: Chunks whose previous vectors were kept.
        removed: Chunks of the previous index no longer in the corpus.
        model_path: The model folder.
        dim: Vector size.
        seconds: Wall time.
        ann: The generation's approximate index (its manifest record: parameters, measured recall), or
            ``None`` where the store searches exactly.
    """

    store: str
    generation: int
    chunks: int
    embedded: int
    reused: int
    removed: int
    model_path: str
    dim: int
    seconds: float
    ann: dict[str, object] | None = None


def _previous(backend: EmbeddedStore | MilvusStore) -> Generation | None:
    """The generation to reuse vectors from, or ``None`` (no index yet, or none intact: rebuild fully)."""
    store = backend.sidecar if isinstance(backend, MilvusStore) else backend
    if not store.exists():
        return None
    try:
        return store.load()
    except StoreError:
        return None


def _clean_up_milvus(backend: MilvusStore, stale: list[str]) -> None:
    """After the sidecar switched: delete rows no longer in the corpus and other models' collections.

    The new generation is already live and searches ignore rows it does not know, so a failure here is a
    warning, not an error: the next index run deletes what is left.
    """
    try:
        backend.delete(stale)
        backend.drop_other_models()
    except StoreError as exc:
        warnings.warn(f"the index is updated, but cleaning up old rows failed: {exc}", RuntimeWarning, stacklevel=3)


def _check_queries(encoder: Encoder, chunks: list[Chunk]) -> np.ndarray:
    """Query vectors for the HNSW recall check: distinct section titles and page names of the corpus,
    encoded as the model encodes questions (short texts from the distribution the index will serve)."""
    names = list(dict.fromkeys(n for c in chunks for n in (c.section_title, c.page_name) if n.strip()))
    picked = np.random.default_rng(0).permutation(len(names))[: ann_module.RECALL_QUERIES]
    return np.asarray(encoder.encode([encoder.info.query(names[i]) for i in picked]), dtype=np.float32)


def _approximate_index(
    vectors: np.ndarray,
    reusable: AnnIndex | None,
    threshold: int | None,
    progress: bool,
    queries: Callable[[], np.ndarray],
) -> AnnIndex | None:
    """The HNSW index a new generation gets: none below the threshold, the previous one if the vectors
    are the previous generation's, else a new one if it passes its recall check (on ``queries()``)."""
    limit = min_vectors() if threshold is None else threshold
    if len(vectors) == 0 or len(vectors) < limit:
        return None
    if reusable is not None:
        return reusable
    if progress:
        print(f"building the HNSW index over {len(vectors):,} vectors ...", file=sys.stderr, flush=True)
    ann = AnnIndex.build(vectors, queries=queries())
    if progress:
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
            stacklevel=3,
        )
        return None
    return ann


def build_index(
    corpus: Corpus | str | Path,
    model: str | Path,
    store: str | Path,
    encoder_config: EncoderConfig | None = None,
    progress: bool = True,
    *,
    bm25_fields: str = DEFAULT_BM25_FIELDS,
    ann_min_vectors: int | None = None,
) -> IndexReport:
    """Embed a corpus's unique chunks and persist vectors, records and BM25 as a new store generation.

    A re-index embeds only chunks whose formatted document text is new (same model); vectors of the
    others are reused and removed chunks are dropped. The previous generation stays until the new one
    is complete, so a crash or a full disk never loses the last good index.

    Args:
        corpus: A :class:`~sitetune.corpus.Corpus`, or a corpus file (CSV, JSONL or Parquet of section
            records).
        model: ``"base"`` or a model folder.
        store: Embedded store directory, ``milvus://PATH.db`` or ``http://HOST:19530``.
        encoder_config: Backend, precision and batch size for encoding.
        progress: Show a progress bar while encoding.
        bm25_fields: What BM25 matches (see :func:`bm25_text`).
        ann_min_vectors: Embedded stores with at least this many chunks get an HNSW index (0: always);
            default ``SITETUNE_ANN_MIN_VECTORS``, else :data:`sitetune.index.ann.MIN_VECTORS`.

    Returns:
        An :class:`IndexReport`.

    Raises:
        InputError: The corpus cannot be read.
        StoreError: The store cannot be written (the previous generation is intact).
    """
    started = time.perf_counter()
    uri = str(store)
    if not isinstance(corpus, Corpus):
        corpus = Corpus.load(corpus)
    chunks = list(corpus.chunks)
    bm25_text(chunks[0], bm25_fields)  # validate the option before the expensive part
    backend: EmbeddedStore | MilvusStore = MilvusStore(uri) if is_milvus_uri(uri) else EmbeddedStore(uri)
    if isinstance(backend, EmbeddedStore) and backend.root.exists() and not backend.root.is_dir():
        raise StoreError(f"store {uri} exists and is not a directory")
    encoder = load_encoder(model, encoder_config)
    fingerprint = model_fingerprint(encoder.model_path)
    documents = [encoder.info.document(c) for c in chunks]
    hashes = [doc_hash(d) for d in documents]
    lock_store = backend.sidecar if isinstance(backend, MilvusStore) else backend
    try:
        with lock_store.lock():
            prev = _previous(backend)
            present: dict[str, str] = {}
            ann: AnnIndex | None = None
            old_rows: dict[tuple[str, str], int] = {}
            if isinstance(backend, MilvusStore):
                # The model's own collection says which rows need no encoding: those it holds with the
                # same document text (this also resumes a run that died after writing some rows).
                backend.use_model(fingerprint)
                present = backend.present()
                todo = [i for i, (c, h) in enumerate(zip(chunks, hashes, strict=True)) if present.get(c.chunk_id) != h]
            else:
                # A vector is reusable when the same model embedded the same document text under the same id.
                if prev is not None and prev.manifest.model_fingerprint == fingerprint:
                    old_rows = {
                        (c.chunk_id, h): i for i, (c, h) in enumerate(zip(prev.chunks, prev.doc_hashes, strict=True))
                    }
                todo = [
                    i for i, (c, h) in enumerate(zip(chunks, hashes, strict=True)) if (c.chunk_id, h) not in old_rows
                ]
            fresh = encoder.encode([documents[i] for i in todo], show_progress=progress)
            removed_ids = sorted({c.chunk_id for c in prev.chunks} - {c.chunk_id for c in chunks}) if prev else []
            manifest = Manifest(
                generation=0,
                model_path=str(encoder.model_path),
                model_fingerprint=fingerprint,
                document_template=encoder.info.document_template,
                corpus_path=str(Path(corpus.source).resolve()) if corpus.source is not None else "",
                corpus_hash=corpus_hash(chunks),
                dim=encoder.dim,
                count=len(chunks),
                bm25_fields=bm25_fields,
            )
            bm25 = BM25Index([c.chunk_id for c in chunks], [bm25_text(c, bm25_fields) for c in chunks])
            if isinstance(backend, MilvusStore):
                backend.upsert([chunks[i].chunk_id for i in todo], [hashes[i] for i in todo], fresh, dim=encoder.dim)
                number = backend.sidecar.write(manifest, chunks, hashes, None, bm25)
                _clean_up_milvus(backend, sorted(set(present) - {c.chunk_id for c in chunks}))
            else:
                vectors = np.empty((len(chunks), encoder.dim), dtype=np.float32)
                if todo:
                    vectors[todo] = fresh
                if prev is not None and prev.vectors is not None:
                    keep = [
                        (i, old_rows[(c.chunk_id, h)])
                        for i, (c, h) in enumerate(zip(chunks, hashes, strict=True))
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
                ann = _approximate_index(
                    vectors,
                    prev.ann if same_rows and prev is not None else None,
                    ann_min_vectors,
                    progress,
                    lambda: _check_queries(encoder, chunks),
                )
                number = backend.write(manifest, chunks, hashes, vectors, bm25, ann)
    finally:
        if isinstance(backend, MilvusStore):
            backend.close()
    return IndexReport(
        store=uri,
        generation=number,
        chunks=len(chunks),
        embedded=len(todo),
        reused=len(chunks) - len(todo),
        removed=len(removed_ids),
        model_path=str(encoder.model_path),
        dim=encoder.dim,
        seconds=round(time.perf_counter() - started, 3),
        ann=ann.info.to_dict() if ann is not None else None,
    )
