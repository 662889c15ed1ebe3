"""The embedded store's build: records streamed in batches into a new generation, resumable after a kill.

Memory does not grow with the corpus beyond a set of chunk ids (8-byte keys), the extra occurrences of
repeated texts, the BM25 vocabulary and, at the end, the HNSW index itself. Per batch of
``checkpoint_rows`` new chunks: encode (or copy the previous generation's vectors of unchanged chunks),
append the vectors to ``vectors.npy`` of the new generation folder, append the chunk records and the BM25
postings to work files, fsync, and record the position in ``STORE/.build/progress.json``::

    STORE/
      CURRENT, gen-000001/   the previous generation: untouched, searchable throughout
      .gen-000002.tmp/       vectors.npy (header rewritten at the end); then chunks.jsonl, bm25/, hnsw.faiss
      .build/                progress.json, rows.jsonl (one line per chunk at its first occurrence), bm25-work/

A run killed mid-way (SIGKILL, power loss, Ctrl-C) leaves both folders; the next run over the same corpus
file (path, size and modification time), model, BM25 fields and previous generation re-reads the records
it had consumed without encoding them (to rebuild the id set and the repeated texts' occurrences), cuts
the files back to the last checkpoint and carries on. Anything else starts afresh. At the end the work
files become ``chunks.jsonl`` (every occurrence merged in) and ``bm25/``, the HNSW index is built where
the store is large enough, and :meth:`EmbeddedStore.commit` seals and switches the generation as every
write does. A build that fails (disk full, bad input) removes its partial generation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.atomic import atomic_write_text
from sitetune.corpus import Chunk, Occurrence
from sitetune.encode import Encoder
from sitetune.errors import InputError, SitetuneError
from sitetune.index import ann as ann_module
from sitetune.index.ann import ANN_FILE, AnnIndex, AnnInfo
from sitetune.index.backends import EmbeddedBackend
from sitetune.index.identity import corpus_hash_line, doc_hash, model_fingerprint
from sitetune.index.store import (
    BM25_DIR,
    BUILD_DIR,
    CHUNKS_FILE,
    VECTORS_FILE,
    EmbeddedStore,
    Manifest,
    StoreError,
    chunk_to_json,
)
from sitetune.lexical import BM25Writer
from sitetune.records import SectionRecord

PROGRESS_FILE = "progress.json"
ROWS_FILE = "rows.jsonl"
BM25_WORK = "bm25-work"
#: New chunks read, encoded and written between checkpoints (what a kill can lose).
DEFAULT_CHECKPOINT_ROWS = 8192
#: Distinct section titles and page names kept for the HNSW recall check's queries.
MAX_CHECK_NAMES = 200_000
_STATE_VERSION = 1
_HEADER_BYTES = 128  # vectors.npy's header, fixed so it can be rewritten in place with the final shape
_PROGRESS_EVERY_S = 5.0

#: Fault-injection hook for crash tests: called with the number of batches this run has checkpointed,
#: right after each checkpoint. ``None`` in use.
batch_hook: Callable[[int], None] | None = None


def vectors_header(rows: int, dim: int) -> bytes:
    """A ``.npy`` (version 1) header of exactly 128 bytes for a C-order float32 (rows, dim) array."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    body = _HEADER_BYTES - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


@dataclass(frozen=True)
class StreamReport:
    """What a streaming build wrote.

    Attributes:
        generation: The generation written (now current).
        chunks: Unique chunks in it.
        embedded: Chunks encoded for it (over every run of an interrupted build).
        removed: Chunks of the previous generation no longer in the corpus.
        resumed: Chunks an interrupted run had written that this run kept (0: started afresh).
        ann: The approximate index's manifest record, or ``None``.
    """

    generation: int
    chunks: int
    embedded: int
    removed: int
    resumed: int
    ann: dict[str, object] | None


@dataclass
class _Previous:
    """The generation whose vectors can be reused: keys sorted, with each one's row and document hash."""

    number: int
    manifest: Manifest
    keys: np.ndarray
    rows: np.ndarray
    hashes: np.ndarray
    vectors: np.ndarray | None

    def lookup(self, keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        """Each key's previous row where the same chunk had the same document hash, else -1."""
        if self.vectors is None or not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        same = (self.keys[pos] == keys) & (self.hashes[pos] == hashes)
        return np.where(same, self.rows[pos], -1)


def _key(chunk_id: str) -> int:
    """A chunk id (16 hex digits: :func:`sitetune.records.chunk_id_of`) as an 8-byte key."""
    return int(chunk_id, 16)


def _read_previous(store: EmbeddedStore, found: tuple[int, Manifest] | None, fingerprint: str) -> _Previous | None:
    """The intact generation's row keys (streamed from its chunks.jsonl) and memory-mapped vectors."""
    if found is None:
        return None
    number, manifest = found
    gdir = store.gen_dir(number)
    keys, hashes = [], []
    with open(gdir / CHUNKS_FILE, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                data = json.loads(line)
                keys.append(_key(data["chunk_id"]))
                hashes.append(_key(data["doc_hash"]))
    key_array = np.array(keys, dtype=np.uint64)
    order = np.argsort(key_array, kind="stable")
    vectors = None
    if manifest.model_fingerprint == fingerprint and (gdir / VECTORS_FILE).is_file():
        vectors = np.load(gdir / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
        if vectors.shape != (len(keys), manifest.dim):
            vectors = None  # not reusable; the build encodes everything
    return _Previous(number, manifest, key_array[order], order.astype(np.int64),
                     np.array(hashes, dtype=np.uint64)[order], vectors)


def _load_state(build: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint of an interrupted build of the same thing, or ``None``."""
    try:
        state: dict[str, Any] = json.loads((build / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if state.get("identity") == identity else None


class _Build:
    """One streaming build under the store's writer lock (see the module docstring)."""

    def __init__(
        self,
        store: EmbeddedStore,
        encoder: Encoder,
        lexical_text: Callable[[Chunk], str],
        identity: dict[str, Any] | None,
        checkpoint_rows: int,
        progress: bool,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.lexical_text = lexical_text
        self.checkpoint_rows = checkpoint_rows
        self.progress = progress
        self.build = store.root / BUILD_DIR
        self.previous_current = store.current()
        found = store.intact()
        self.fingerprint = model_fingerprint(encoder.model_path)
        self.identity = None if identity is None else {
            **identity,
            "version": _STATE_VERSION,
            "model": self.fingerprint,
            "document_template": encoder.info.document_template,
            "dim": encoder.dim,
            "current": self.previous_current,
            "previous": found[0] if found is not None else None,
        }
        state = _load_state(self.build, self.identity) if self.identity is not None else None
        if state is not None and not store.tmp_dir(int(state["generation"])).is_dir():
            state = None
        self.resumed = state is not None
        if state is None:
            store.clean_leftovers()
            state = {"identity": self.identity, "generation": store.next_number(), "read": 0, "rows": 0,
                     "embedded": 0, "same_order": True, "rows_bytes": 0, "bm25": None}
        self.state = state
        self.tmp = store.tmp_dir(int(state["generation"]))
        self.prev = _read_previous(store, found, self.fingerprint)
        self.seen: set[int] = set()
        self.extras: dict[str, dict[Occurrence, None]] = {}
        self.names: dict[str, None] = {}
        self.batches = 0

    # --- the batches -------------------------------------------------------------------------------

    def _open(self) -> None:
        dim = self.encoder.dim
        self.tmp.mkdir(exist_ok=True)
        self.build.mkdir(exist_ok=True)
        vectors = self.tmp / VECTORS_FILE
        if not self.resumed:
            vectors.write_bytes(vectors_header(0, dim))
            (self.build / ROWS_FILE).write_bytes(b"")
        self.vec_fh = open(vectors, "r+b")  # noqa: SIM115 - open across batches, closed by close()
        self.vec_fh.truncate(_HEADER_BYTES + int(self.state["rows"]) * dim * 4)
        self.vec_fh.seek(0, os.SEEK_END)
        self.rows_fh = open(self.build / ROWS_FILE, "r+b")  # noqa: SIM115 - closed by close()
        self.rows_fh.truncate(int(self.state["rows_bytes"]))
        self.rows_fh.seek(0, os.SEEK_END)
        self.bm25 = BM25Writer(self.build / BM25_WORK, self.state["bm25"])

    def run(self, records: Iterator[SectionRecord]) -> None:
        """Read every record, writing batches of new chunks past the checkpoint (the rest is replayed)."""
        self._open()
        done = int(self.state["read"])
        if self.resumed and self.progress:
            print(f"resuming the interrupted build of generation {self.state['generation']}: "
                  f"{self.state['rows']:,} chunks from {done:,} records already written", file=sys.stderr,
                  flush=True)
        self.started = time.perf_counter()
        self.start_rows = int(self.state["rows"])
        self.last_report = self.started
        self.last_reported: tuple[int, int] | None = None  # (rows, records read) of the last progress line
        pending: list[Chunk] = []
        read = 0
        for record in records:
            read += 1
            cid = record.chunk_id
            key = _key(cid)
            occurrence = Occurrence(record.page_name, record.section_title, record.section_type, record.url)
            if key in self.seen:
                self.extras.setdefault(cid, {})[occurrence] = None
            else:
                self.seen.add(key)
                for name in (record.section_title, record.page_name):
                    if name.strip() and len(self.names) < MAX_CHECK_NAMES:
                        self.names[name] = None
                if read > done:
                    pending.append(Chunk(cid, record.text, (occurrence,)))
            if len(pending) >= self.checkpoint_rows:
                self._write_batch(pending, read)
                pending = []
        if read < done:
            raise InputError(f"the corpus has {read:,} records, fewer than the {done:,} an interrupted build read")
        if pending or read > done:
            self._write_batch(pending, read)

    def _write_batch(self, chunks: list[Chunk], read: int) -> None:
        """Encode or copy the batch's vectors, append vectors, records and BM25 postings, checkpoint."""
        encoder, state, dim = self.encoder, self.state, self.encoder.dim
        documents = [encoder.info.document(c) for c in chunks]
        hashes = [doc_hash(d) for d in documents]
        first = int(state["rows"])
        vectors = np.empty((len(chunks), dim), dtype=np.float32)
        if chunks:
            old = (self.prev.lookup(np.array([_key(c.chunk_id) for c in chunks], dtype=np.uint64),
                                    np.array([_key(h) for h in hashes], dtype=np.uint64))
                   if self.prev is not None else np.full(len(chunks), -1, dtype=np.int64))
            todo = np.flatnonzero(old < 0)
            kept = np.flatnonzero(old >= 0)
            if len(todo):
                vectors[todo] = encoder.encode([documents[i] for i in todo])
            if len(kept):
                assert self.prev is not None and self.prev.vectors is not None
                vectors[kept] = self.prev.vectors[old[kept]]
            state["embedded"] = int(state["embedded"]) + len(todo)
            state["same_order"] = bool(state["same_order"]) and not len(todo) and bool(
                np.array_equal(old, np.arange(first, first + len(chunks))))
        self.vec_fh.write(vectors.tobytes())
        self.rows_fh.write("".join(chunk_to_json(c, h) + "\n" for c, h in zip(chunks, hashes, strict=True))
                           .encode("utf-8"))
        self.bm25.add([c.chunk_id for c in chunks], [self.lexical_text(c) for c in chunks])
        for fh in (self.vec_fh, self.rows_fh):
            fh.flush()
            os.fsync(fh.fileno())
        state["bm25"] = self.bm25.checkpoint()
        state["rows"] = first + len(chunks)
        state["rows_bytes"] = self.rows_fh.tell()
        state["read"] = read
        if self.identity is not None:
            atomic_write_text(self.build / PROGRESS_FILE, json.dumps(state, indent=1) + "\n")
        self.batches += 1
        if batch_hook is not None:
            batch_hook(self.batches)
        self._report(read)

    def _report(self, read: int, *, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.progress or (not final and now - self.last_report < _PROGRESS_EVERY_S):
            return
        rows = int(self.state["rows"])
        if final and (rows, read) == self.last_reported:  # the last batch's line already said it all
            return
        self.last_report = now
        self.last_reported = (rows, read)
        rate = (rows - self.start_rows) / max(now - self.started, 1e-9)
        print(f"indexing: {rows:,} chunks from {read:,} records, {rate:,.0f} chunks/s "
              f"({self.state['embedded']:,} encoded)", file=sys.stderr, flush=True)

    # --- the end -----------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def finish(self, backend: EmbeddedBackend, corpus_path: str, bm25_fields: str) -> StreamReport:
        """Seal the vectors, merge occurrences into chunks.jsonl, lay out BM25, build HNSW, commit."""
        state, dim = self.state, self.encoder.dim
        rows = int(state["rows"])
        self._report(int(state["read"]), final=True)
        if rows == 0:
            raise InputError("the corpus has no records", path=corpus_path or None)
        self.vec_fh.seek(0)
        self.vec_fh.write(vectors_header(rows, dim))
        self.vec_fh.close()
        self.rows_fh.close()
        self._say(f"writing {rows:,} chunk records and the BM25 index ...")
        digest = hashlib.sha256()
        with open(self.build / ROWS_FILE, encoding="utf-8") as src, \
                open(self.tmp / CHUNKS_FILE, "w", encoding="utf-8") as out:
            for line in src:
                data = json.loads(line)
                home = Occurrence(**data["occurrences"][0])
                more = self.extras.get(data["chunk_id"])
                occurrences = tuple(dict.fromkeys([home, *more])) if more else (home,)
                chunk = Chunk(data["chunk_id"], data["text"], occurrences)
                digest.update(corpus_hash_line(chunk))
                out.write(chunk_to_json(chunk, data["doc_hash"]) + "\n")
        self.bm25.finish(self.tmp / BM25_DIR)
        vectors = np.load(self.tmp / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
        ann = backend._approximate_index(vectors, self._reusable_ann(rows), self._check_queries)
        del vectors
        if ann is not None:
            ann.save(self.tmp / ANN_FILE)
        removed = 0
        if self.prev is not None and len(self.prev.keys):
            seen = np.fromiter(self.seen, dtype=np.uint64, count=len(self.seen))
            removed = int((~np.isin(self.prev.keys, seen)).sum())
        manifest = Manifest(
            generation=0,
            model_path=str(self.encoder.model_path),
            model_fingerprint=self.fingerprint,
            document_template=self.encoder.info.document_template,
            corpus_path=corpus_path,
            corpus_hash=digest.hexdigest(),
            dim=dim,
            count=rows,
            bm25_fields=bm25_fields,
        )
        number = self.store.commit(self.tmp, manifest, ann.info if ann is not None else None,
                                   self.store.current())
        shutil.rmtree(self.build, ignore_errors=True)
        resumed = self.start_rows if self.resumed else 0
        return StreamReport(number, rows, int(state["embedded"]), removed, resumed,
                            ann.info.to_dict() if ann is not None else None)

    def _reusable_ann(self, rows: int) -> AnnIndex | None:
        """The previous generation's HNSW index when this one has exactly its rows and vectors."""
        prev = self.prev
        if prev is None or prev.manifest.ann is None or not self.state["same_order"] or rows != len(prev.keys):
            return None
        info = AnnInfo.from_dict(prev.manifest.ann)
        return AnnIndex.load(self.store.gen_dir(prev.number) / info.file, info)

    def _check_queries(self) -> np.ndarray:
        """Query vectors for the HNSW recall check: distinct section titles and page names, as questions."""
        names = list(self.names)
        picked = np.random.default_rng(0).permutation(len(names))[: ann_module.RECALL_QUERIES]
        queries = [self.encoder.info.query(names[i]) for i in picked]
        return np.asarray(self.encoder.encode(queries), dtype=np.float32)

    def close(self) -> None:
        for name in ("vec_fh", "rows_fh"):
            fh = getattr(self, name, None)
            if fh is not None and not fh.closed:
                fh.close()
        bm25 = getattr(self, "bm25", None)
        if bm25 is not None:
            bm25.close()

    def discard(self) -> None:
        """Remove the partial generation and the progress (a failed build starts afresh next time)."""
        self.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.build, ignore_errors=True)


def stream_build(
    backend: EmbeddedBackend,
    records: Iterator[SectionRecord],
    encoder: Encoder,
    *,
    lexical_text: Callable[[Chunk], str],
    corpus_path: str,
    source_identity: dict[str, Any] | None,
    bm25_fields: str,
    checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
    progress: bool = False,
) -> StreamReport:
    """Build a new generation of an embedded store from a stream of records; call under the store's lock.

    Args:
        backend: The embedded store.
        records: The corpus's records in order (read once).
        encoder: The model.
        lexical_text: What BM25 indexes for a chunk.
        corpus_path: The corpus file, for the manifest ("" for a corpus in memory).
        source_identity: What identifies the corpus between runs (file path, size, modification time), or
            ``None`` when it cannot be identified (a corpus in memory): then nothing is resumed.
        bm25_fields: The manifest's ``bm25_fields``.
        checkpoint_rows: New chunks per batch and checkpoint.
        progress: Report chunks/s on stderr.

    Raises:
        InputError: A record is malformed (the partial generation is removed).
        StoreError: Writing failed (the partial generation is removed; the previous one is intact).
    """
    if checkpoint_rows < 1:
        raise SitetuneError(f"checkpoint rows must be at least 1, got {checkpoint_rows}")
    identity = None if source_identity is None else {**source_identity, "bm25_fields": bm25_fields}
    build = _Build(backend.store, encoder, lexical_text, identity, checkpoint_rows, progress)
    previous = build.previous_current
    try:
        build.run(records)
        report = build.finish(backend, corpus_path, bm25_fields)
    except OSError as exc:
        build.discard()
        raise backend.store.write_failed(build.tmp, previous, exc) from exc
    except SitetuneError:
        build.discard()
        raise
    except ValueError as exc:
        build.discard()
        raise StoreError(f"could not build a new generation in {backend.store.root}: {exc}") from exc
    finally:
        build.close()
    return report


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a corpus file between runs: resolved path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

