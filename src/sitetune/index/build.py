"""Building and incrementally updating an index from a corpus (in memory or a file), through any vector store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitetune.config import DEFAULT_BM25_FIELDS, Bm25Fields, EncoderConfig
from sitetune.corpus import Chunk, Corpus, Occurrence
from sitetune.encode import Encoder, load_encoder
from sitetune.errors import SitetuneError
from sitetune.index import ann as ann_module
from sitetune.index.backends import EmbeddedBackend, NewGeneration, open_backend
from sitetune.index.identity import corpus_hash, doc_hash, model_fingerprint
from sitetune.index.milvus import is_milvus_uri
from sitetune.index.store import Manifest
from sitetune.index.stream import DEFAULT_CHECKPOINT_ROWS, file_identity, stream_build
from sitetune.lexical import BM25Index
from sitetune.recordio import iter_records

#: Every value of ``bm25_fields`` (the default, :data:`~sitetune.config.DEFAULT_BM25_FIELDS`, and why it is).
BM25_FIELDS = tuple(f.value for f in Bm25Fields)


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
        resumed: Chunks an interrupted build of the same corpus had written, kept by this run (0: none).
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
    resumed: int = 0


def _check_queries(encoder: Encoder, chunks: list[Chunk]) -> np.ndarray:
    """Query vectors for the HNSW recall check.

    Distinct section titles and page names of the corpus, encoded as the model encodes questions (short
    texts from the distribution the index will serve).
    """
    names = list(dict.fromkeys(n for c in chunks for n in (c.section_title, c.page_name) if n.strip()))
    picked = np.random.default_rng(0).permutation(len(names))[: ann_module.RECALL_QUERIES]
    return np.asarray(encoder.encode([encoder.info.query(names[i]) for i in picked]), dtype=np.float32)


def build_index(
    corpus: Corpus | str | Path,
    model: str | Path,
    store: str | Path,
    encoder_config: EncoderConfig | None = None,
    progress: bool = True,
    *,
    bm25_fields: str = DEFAULT_BM25_FIELDS,
    ann_min_vectors: int | None = None,
    checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
) -> IndexReport:
    """Embed a corpus's unique chunks and persist vectors, records and BM25 as a new store generation.

    A re-index embeds only chunks whose formatted document text is new (same model); vectors of the
    others are reused and removed chunks are dropped. The previous generation stays until the new one
    is complete, so a crash or a full disk never loses the last good index. An embedded store is built
    by streaming the records in batches (memory does not grow with the corpus; a killed build over a
    corpus file resumes where it stopped); Milvus stores are built from the corpus in memory.

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
        checkpoint_rows: Embedded stores: new chunks encoded and written per batch; a killed build over a
            corpus file resumes from the last batch (see :mod:`sitetune.index.stream`).

    Returns:
        An :class:`IndexReport`.

    Raises:
        InputError: The corpus cannot be read.
        StoreError: The store cannot be written (the previous generation is intact).
    """
    started = time.perf_counter()
    uri = str(store)
    bm25_text(_PROBE, bm25_fields)  # validate the option before the expensive part
    if not isinstance(corpus, Corpus) and not is_milvus_uri(uri):
        return _build_streaming(Path(corpus), None, model, uri, encoder_config, progress, bm25_fields,
                                ann_min_vectors, checkpoint_rows, started)
    if not isinstance(corpus, Corpus):
        corpus = Corpus.load(corpus)
    if not is_milvus_uri(uri):
        return _build_streaming(None, corpus, model, uri, encoder_config, progress, bm25_fields,
                                ann_min_vectors, checkpoint_rows, started)
    chunks = list(corpus.chunks)
    backend = open_backend(uri, ann_min_vectors=ann_min_vectors, progress=progress)
    encoder = load_encoder(model, encoder_config)
    fingerprint = model_fingerprint(encoder.model_path)
    documents = [encoder.info.document(c) for c in chunks]
    hashes = [doc_hash(d) for d in documents]
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
    try:
        with backend.lock():
            prev = backend.previous()
            removed_ids = sorted({c.chunk_id for c in prev.chunks} - {c.chunk_id for c in chunks}) if prev else []
            written = backend.write_generation(
                NewGeneration(manifest, chunks, hashes, bm25),
                encode=lambda rows: encoder.encode([documents[i] for i in rows], show_progress=progress),
                check_queries=lambda: _check_queries(encoder, chunks),
            )
    finally:
        backend.close()
    return IndexReport(
        store=uri,
        generation=written.number,
        chunks=len(chunks),
        embedded=written.embedded,
        reused=len(chunks) - written.embedded,
        removed=len(removed_ids),
        model_path=str(encoder.model_path),
        dim=encoder.dim,
        seconds=round(time.perf_counter() - started, 3),
        ann=written.ann,
    )


_PROBE = Chunk("0" * 16, "", (Occurrence("", "", "", ""),))


def _build_streaming(
    path: Path | None,
    corpus: Corpus | None,
    model: str | Path,
    uri: str,
    encoder_config: EncoderConfig | None,
    progress: bool,
    bm25_fields: str,
    ann_min_vectors: int | None,
    checkpoint_rows: int,
    started: float,
) -> IndexReport:
    """An embedded store's build: records streamed from ``path`` (resumable) or from ``corpus`` in memory."""
    if path is not None:
        records = iter_records(path)  # raises now for a missing file or an unknown extension
        identity: dict[str, object] | None = file_identity(path)
        corpus_path = str(path.resolve())
    else:
        assert corpus is not None
        records = iter(corpus.records)
        identity = None
        corpus_path = str(Path(corpus.source).resolve()) if corpus.source is not None else ""
    # Only an embedded store streams (build_index sent Milvus URIs to the in-memory path).
    backend = EmbeddedBackend(uri, ann_min_vectors=ann_min_vectors, progress=progress)
    encoder = load_encoder(model, encoder_config)
    with backend.lock():
        report = stream_build(
            backend, records, encoder, lexical_text=lambda c: bm25_text(c, bm25_fields), corpus_path=corpus_path,
            source_identity=identity, bm25_fields=bm25_fields, checkpoint_rows=checkpoint_rows, progress=progress,
        )
    return IndexReport(
        store=uri,
        generation=report.generation,
        chunks=report.chunks,
        embedded=report.embedded,
        reused=report.chunks - report.embedded,
        removed=report.removed,
        model_path=str(encoder.model_path),
        dim=encoder.dim,
        seconds=round(time.perf_counter() - started, 3),
        ann=report.ann,
        resumed=report.resumed,
    )
