"""The embedded store: a directory of immutable generations, switched by an atomically replaced pointer.

Layout (Lucene-style)::

    STORE/
      CURRENT              "gen-000003" — replaced atomically once a generation is complete
      gen-000002/          the previous generation, kept until the next one is complete
      gen-000003/
        manifest.json      model identity, corpus hash, dim, count and a sha256 of every file below
        vectors.npy        (count, dim) float32 unit rows, in chunks.jsonl order (absent for Milvus sidecars)
        hnsw.faiss         an HNSW index over vectors.npy, in stores of 50k chunks or more (see index/ann.py)
        chunks.jsonl       chunk_id, text, doc_hash, occurrences — one chunk per line
        signals.json       each chunk's signpost probability, scope and page references (sitetune.sectionkind)
        site.json          the site's vocabulary, template pages, abbreviations and words (sitetune.siteanalysis)
        bm25/              the BM25 index over the same chunks

A writer builds ``.gen-NNNNNN.tmp/``, fsyncs every file, renames it to ``gen-NNNNNN/`` and only then
points ``CURRENT`` at it, so a kill at any moment leaves ``CURRENT`` on a whole generation. Opening
verifies the manifest's checksums and falls back to the newest intact generation with a warning.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.atomic import atomic_write_text, fsync_dir, sha256_file
from sitetune.corpus import Chunk, Occurrence
from sitetune.errors import SitetuneError
from sitetune.index.ann import ANN_FILE, AnnIndex, AnnInfo
from sitetune.index.lease import GenerationGone, Lease, pruning, take_lease
from sitetune.lexical import BM25Index
from sitetune.sectionkind import MAX_CHUNKS, OutdatedSignals, SectionSignals, section_signals
from sitetune.siteanalysis import SiteAnalysis, analyse_site

STORE_FORMAT = 1
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.npy"
CHUNKS_FILE = "chunks.jsonl"
BM25_DIR = "bm25"
SIGNALS_FILE = "signals.json"
SITE_FILE = "site.json"
#: The work folder of a streaming build (see :mod:`sitetune.index.stream`): its progress, beside ``.gen-*.tmp``.
BUILD_DIR = ".build"
_GEN_RE = re.compile(r"^gen-(\d{6})$")

#: Fault-injection hook for crash tests: called with the name of each step :meth:`EmbeddedStore.write`
#: has just finished ("files-written", "synced", "renamed", "switched", "pruning"). ``None`` in use.
write_step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if write_step_hook is not None:
        write_step_hook(name)


class StoreError(SitetuneError):
    """A store that cannot be opened or written: missing, corrupt, or built with another model."""


@dataclass(frozen=True)
class Manifest:
    """What a generation says about itself.

    Attributes:
        generation: Its number (``gen-NNNNNN``).
        model_path: The model folder that embedded it.
        model_fingerprint: sha256 over the model's weights and config (see :func:`model_fingerprint`).
        document_template: How documents were formatted for the model.
        corpus_path: The corpus file it was built from ("" for a corpus built in memory).
        corpus_hash: sha256 over the chunks and their occurrences.
        dim: Vector size.
        count: Number of chunks.
        bm25_fields: Which fields the BM25 index matches (see :func:`bm25_text`).
        files: Relative path -> sha256 of every file in the generation but the manifest.
        ann: The approximate index's :class:`AnnInfo` (library, parameters, measured recall), if any.
        created: ISO time of writing.
        format: Store format version.
        collection: The Milvus collection holding the generation's vectors ("" for an embedded store, and for
            a Milvus store written before each generation had a collection of its own: see
            :meth:`sitetune.index.milvus.MilvusStore.collection_of`).
    """

    generation: int
    model_path: str
    model_fingerprint: str
    document_template: str
    corpus_path: str
    corpus_hash: str
    dim: int
    count: int
    bm25_fields: str
    files: dict[str, str] = field(default_factory=dict)
    ann: dict[str, Any] | None = None
    created: str = ""
    format: int = STORE_FORMAT
    collection: str = ""

    @property
    def created_seconds(self) -> float | None:
        """Unix seconds of ``created`` (a naive time read as UTC); ``None`` when it is empty or malformed."""
        try:
            when = datetime.datetime.fromisoformat(self.created)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Read a manifest (keys of newer formats ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Generation:
    """One loaded generation: chunks, their document hashes, vectors (if stored here) and BM25.

    Attributes:
        manifest: The generation's manifest.
        chunks: Unique chunks, in vector-row order.
        doc_hashes: Hash of each chunk's formatted document text (what the model embedded).
        vectors: (count, dim) float32, or ``None`` where a Milvus collection holds them.
        bm25: The lexical index over the chunks.
        path: The generation's directory.
        ann: The approximate index over ``vectors``, if the generation has one.
        signals: Each chunk's section signals (computed when opening a store written before they existed).
        site: The site's analysis written at index time (``None`` for stores written before it existed).
        lease: This process's reader lease on the generation (:mod:`sitetune.index.lease`), if it took one.
    """

    manifest: Manifest
    chunks: list[Chunk]
    doc_hashes: list[str]
    vectors: np.ndarray | None
    bm25: BM25Index
    path: Path
    ann: AnnIndex | None = None
    signals: SectionSignals | None = None
    site: SiteAnalysis | None = None
    lease: Lease | None = None


@contextlib.contextmanager
def exclusive_flock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking ``flock`` on ``path`` for the block.

    The kernel releases it if the process dies, so no stale lock is left behind.

    Raises:
        StoreError: Another process holds it; ``busy`` is the message.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(busy) from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def chunk_to_json(chunk: Chunk, doc_hash: str) -> str:
    """One chunks.jsonl line."""
    return json.dumps(
        {
            "chunk_id": chunk.chunk_id,
            "text": chunk.text,
            "doc_hash": doc_hash,
            "occurrences": [asdict(o) for o in chunk.occurrences],
        },
        ensure_ascii=False,
    )


def chunk_from_json(line: str) -> tuple[Chunk, str]:
    """Parse one chunks.jsonl line into the chunk and its document hash."""
    data = json.loads(line)
    occurrences = tuple(Occurrence(**o) for o in data["occurrences"])
    return Chunk(data["chunk_id"], data["text"], occurrences), str(data["doc_hash"])


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def write_analysis(folder: Path) -> None:
    """Analyse the chunks of a generation folder and write the results beside them (index time).

    Each chunk's signals (``signals.json``, :mod:`sitetune.sectionkind`) and the site's analysis
    (``site.json``, :mod:`sitetune.siteanalysis`). A store too large to analyse
    (:data:`sitetune.sectionkind.MAX_CHUNKS`) gets neutral signals and no site file, without its chunks
    being read into memory.
    """
    with open(folder / CHUNKS_FILE, encoding="utf-8") as fh:
        count = sum(1 for line in fh if line.strip())
    if count > MAX_CHUNKS:
        signals = SectionSignals.neutral(count)
    else:
        with open(folder / CHUNKS_FILE, encoding="utf-8") as fh:
            chunks = [chunk_from_json(line)[0] for line in fh if line.strip()]
        signals = section_signals(chunks)
        (folder / SITE_FILE).write_text(analyse_site(chunks).to_json(), encoding="utf-8")
    (folder / SIGNALS_FILE).write_text(signals.to_json(), encoding="utf-8")


class EmbeddedStore:
    """A store directory of generations (see the module docstring).

    Args:
        root: The store directory (created on the first write).

    Use :meth:`load` to read the current generation (with fallback) and :meth:`write` to add one.
    Only one writer at a time: :meth:`write` holds an exclusive lock on ``STORE/.lock``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- reading -----------------------------------------------------------------------------------

    def generations(self) -> list[int]:
        """Numbers of the complete-looking generation directories, oldest first."""
        if not self.root.is_dir():
            return []
        found = [int(m.group(1)) for p in self.root.iterdir() if (m := _GEN_RE.match(p.name)) and p.is_dir()]
        return sorted(found)

    def current(self) -> int | None:
        """The generation ``CURRENT`` points at, or ``None`` if there is no readable pointer."""
        try:
            name = (self.root / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        match = _GEN_RE.match(name)
        return int(match.group(1)) if match else None

    def exists(self) -> bool:
        """Whether the directory holds any generation."""
        return bool(self.generations())

    def gen_dir(self, generation: int) -> Path:
        """The folder of generation ``generation``."""
        return self.root / f"gen-{generation:06d}"

    def read_manifest(self, generation: int) -> Manifest:
        """The manifest of one generation, checksums not verified."""
        path = self.gen_dir(generation) / MANIFEST_FILE
        try:
            return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"{path}: unreadable manifest: {exc}") from exc

    def verify(self, generation: int) -> Manifest:
        """Read a generation's manifest and check every listed file's sha256.

        Raises:
            StoreError: The manifest is unreadable, a file is missing, or a checksum differs.
        """
        manifest = self.read_manifest(generation)
        if manifest.format != STORE_FORMAT:
            raise StoreError(
                f"{self.gen_dir(generation)}: store format {manifest.format}, expected {STORE_FORMAT}"
            )
        for rel, expected in manifest.files.items():
            path = self.gen_dir(generation) / rel
            try:
                actual = sha256_file(path)
            except OSError as exc:
                raise StoreError(f"{path}: listed in the manifest but unreadable: {exc}") from exc
            if actual != expected:
                raise StoreError(f"{path}: checksum mismatch (the file is corrupt or was changed)")
        return manifest

    def load_generation(self, generation: int) -> Generation:
        """Verify and load one generation."""
        manifest = self.verify(generation)
        gdir = self.gen_dir(generation)
        chunks: list[Chunk] = []
        hashes: list[str] = []
        with open(gdir / CHUNKS_FILE, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    chunk, doc_hash = chunk_from_json(line)
                    chunks.append(chunk)
                    hashes.append(doc_hash)
        vectors = None
        if (gdir / VECTORS_FILE).is_file():
            # Memory-mapped: pages are shared by every process that opens this generation, and a store
            # with an ANN index only touches the rows a page filter or a re-index needs.
            vectors = np.load(gdir / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
            if vectors.dtype != np.float32:
                raise StoreError(f"{gdir / VECTORS_FILE}: {vectors.dtype} vectors, expected float32")
            if vectors.shape != (len(chunks), manifest.dim):
                raise StoreError(f"{gdir}: {vectors.shape[0]} vectors for {len(chunks)} chunks")
        if len(chunks) != manifest.count:
            raise StoreError(f"{gdir}: {len(chunks)} chunks, manifest says {manifest.count}")
        bm25 = BM25Index.load(gdir / BM25_DIR)
        ann = None
        if manifest.ann is not None:
            info = AnnInfo.from_dict(manifest.ann)
            ann = AnnIndex.load(gdir / info.file, info)
            if vectors is None or len(ann) != len(vectors):
                raise StoreError(f"{gdir}: the ANN index holds {len(ann)} vectors for {len(chunks)} chunks")
        if (gdir / SIGNALS_FILE).is_file():
            try:
                signals = SectionSignals.from_json((gdir / SIGNALS_FILE).read_text(encoding="utf-8"), len(chunks))
            except OutdatedSignals:  # written by an earlier sitetune: the signals it lacks are computed now
                signals = section_signals(chunks)
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"{gdir / SIGNALS_FILE}: {exc}") from exc
        else:  # a generation written before the signals existed
            signals = section_signals(chunks)
        site = None  # a generation written before the site analysis existed, or too large: search derives it
        if (gdir / SITE_FILE).is_file():
            try:
                site = SiteAnalysis.from_json((gdir / SITE_FILE).read_text(encoding="utf-8"))
            except ValueError as exc:
                raise StoreError(f"{gdir / SITE_FILE}: {exc}") from exc
        return Generation(manifest, chunks, hashes, vectors, bm25, gdir, ann, signals, site=site)

    def _candidates(self) -> tuple[list[int], list[str]]:
        """Generations in the order :meth:`load` tries them, and what is wrong with ``CURRENT`` (if anything)."""
        gens = self.generations()
        current = self.current()
        order = ([current] if current in gens else []) + [g for g in reversed(gens) if g != current]
        problems = [] if current in gens else [f"{self.root / CURRENT_FILE}: missing or pointing at no generation"]
        return order, problems

    def intact(self) -> tuple[int, Manifest] | None:
        """The generation :meth:`load` would open and its manifest, checksums verified but nothing loaded.

        ``None`` when there is none (no generation, or none intact).
        """
        for gen in self._candidates()[0]:
            try:
                return gen, self.verify(gen)
            except (StoreError, OSError):
                continue
        return None

    def load(self, generation: int | None = None, *, lease: bool = False) -> Generation:
        """The current generation; if it is damaged, the newest intact one, with a warning.

        Args:
            generation: Load exactly this generation (no fallback); ``None``: the current one.
            lease: Hold a reader lease on the generation loaded (``Generation.lease``), so that a writer's
                prune keeps it until the lease is released. A store this process cannot write to is
                read without one.

        Raises:
            StoreError: No generation exists, or none is intact (or ``generation`` is not).
        """
        gens = self.generations()
        if not gens:
            raise StoreError(f"no index at {self.root}: build one with 'sitetune index --store {self.root}'")
        order, problems = self._candidates()
        if generation is not None:
            order, problems = [generation], []
        for gen in order:
            held: Lease | None = None
            try:
                if lease:
                    held = self._lease(gen)
                loaded = self.load_generation(gen)
            except (StoreError, OSError, ValueError, KeyError, GenerationGone) as exc:
                if held is not None:
                    held.release()
                problems.append(str(exc))
                continue
            loaded.lease = held
            if problems:
                warnings.warn(
                    f"store {self.root}: using generation {gen} because " + "; ".join(problems),
                    RuntimeWarning,
                    stacklevel=2,
                )
            return loaded
        raise StoreError(f"store {self.root} has no intact generation: " + "; ".join(problems))

    def _lease(self, generation: int) -> Lease | None:
        """A reader lease on ``generation``; ``None`` where the store is read-only to this process."""
        try:
            return take_lease(self.root, generation, self.gen_dir(generation))
        except PermissionError:
            return None
        except OSError as exc:
            import errno

            if exc.errno == errno.EROFS:
                return None
            raise

    # --- writing -----------------------------------------------------------------------------------

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive writer lock (released by the kernel if the writer dies)."""
        return exclusive_flock(self.root / ".lock", f"store {self.root} is being written by another process")

    def clean_leftovers(self) -> None:
        """Remove what killed writers left (call under :meth:`lock`): never referenced by ``CURRENT``.

        Half-written generations, half-deleted ones and a streaming build's progress.
        """
        for p in self.root.iterdir():
            if p.name.startswith((".gen-", ".trash-", BUILD_DIR)) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)

    def write(
        self,
        manifest: Manifest,
        chunks: Sequence[Chunk],
        doc_hashes: Sequence[str],
        vectors: np.ndarray | None,
        bm25: BM25Index,
        ann: AnnIndex | None = None,
    ) -> int:
        """Write a new generation and make it current; call under :meth:`lock`.

        Args:
            manifest: Everything but ``generation``, ``files`` and ``created`` (filled here).
            chunks: The chunks, in vector-row order.
            doc_hashes: One per chunk.
            vectors: (len(chunks), dim) float32, or ``None`` for a sidecar of a Milvus collection.
            bm25: The BM25 index over ``chunks`` (same order).
            ann: An approximate index over ``vectors`` (same rows) to store with them, if any.

        Returns:
            The new generation's number. The previous current generation is kept; older ones are removed.

        Raises:
            StoreError: Writing failed (disk full, I/O error); the previous generation is intact.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_leftovers()
        previous = self.current()
        number = self.next_number()
        tmp = self.tmp_dir(number)
        try:
            tmp.mkdir()
            with open(tmp / CHUNKS_FILE, "w", encoding="utf-8") as fh:
                for chunk, doc_hash in zip(chunks, doc_hashes, strict=True):
                    fh.write(chunk_to_json(chunk, doc_hash) + "\n")
            if vectors is not None:
                with open(tmp / VECTORS_FILE, "wb") as bfh:
                    np.save(bfh, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            bm25.save(tmp / BM25_DIR)
            if ann is not None:
                ann.save(tmp / ANN_FILE)
        except OSError as exc:
            raise self.write_failed(tmp, previous, exc) from exc
        return self.commit(tmp, manifest, ann.info if ann is not None else None, previous)

    def next_number(self) -> int:
        """The number the next generation gets: one above every generation and ``CURRENT``."""
        return max([*self.generations(), self.current() or 0]) + 1

    def tmp_dir(self, number: int) -> Path:
        """The folder generation ``number`` is written in before it is renamed to :meth:`gen_dir`."""
        return self.root / f".gen-{number:06d}.tmp"

    def write_failed(self, tmp: Path, previous: int | None, exc: OSError) -> StoreError:
        """Remove a half-written generation folder; the error to raise (it says the previous one is intact)."""
        shutil.rmtree(tmp, ignore_errors=True)
        kept = f"generation {previous} is intact" if previous else "nothing was written"
        return StoreError(f"could not write a new generation in {self.root}: {exc} ({kept})")

    def commit(self, tmp: Path, manifest: Manifest, ann: AnnInfo | None, previous: int | None) -> int:
        """Seal a generation written into ``tmp`` (a :meth:`tmp_dir`) and make it current; call under :meth:`lock`.

        Writes the manifest (checksums of every file in ``tmp``), fsyncs, renames ``tmp`` to its
        ``gen-NNNNNN`` folder, switches ``CURRENT`` and prunes generations older than ``previous``.

        Args:
            tmp: The folder holding every file of the generation but the manifest.
            manifest: Everything but ``generation``, ``files``, ``ann`` and ``created`` (filled here).
            ann: The approximate index's record if ``tmp`` holds one.
            previous: The generation ``CURRENT`` named before (kept).

        Returns:
            The new generation's number.

        Raises:
            StoreError: Writing failed (``tmp`` is removed; the previous generation is intact).
        """
        match = re.match(r"^\.gen-(\d{6})\.tmp$", tmp.name)
        if match is None:
            raise ValueError(f"{tmp}: not a generation's temporary folder")
        number = int(match.group(1))
        try:
            # A resumed build reuses ``tmp``: a manifest that a killed commit wrote there is not one of the
            # generation's files (listing it, then overwriting it, made the new generation fail its check).
            (tmp / MANIFEST_FILE).unlink(missing_ok=True)
            write_analysis(tmp)
            files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            fields: dict[str, Any] = {"generation": number, "files": files, "created": created}
            if ann is not None:
                fields["ann"] = {**ann.to_dict(), "file": ANN_FILE}
            done = Manifest(**{**asdict(manifest), **fields})
            (tmp / MANIFEST_FILE).write_text(json.dumps(asdict(done), indent=2) + "\n", encoding="utf-8")
            _step("files-written")
            _fsync_tree(tmp)
            _step("synced")
            os.rename(tmp, self.gen_dir(number))
            fsync_dir(self.root)
            _step("renamed")
            atomic_write_text(self.root / CURRENT_FILE, f"gen-{number:06d}\n")
            _step("switched")
        except OSError as exc:
            raise self.write_failed(tmp, previous, exc) from exc
        self._prune(keep={number, *([previous] if previous else [])})
        return number

    def _prune(self, keep: set[int]) -> None:
        """Remove generations outside ``keep`` that no live reader leases (dead readers' leases are reclaimed)."""
        trashed = []
        with pruning(self.root) as leased:
            for gen in self.generations():
                if gen not in keep and gen not in leased:
                    # Rename out of the gen-* namespace first, so a kill mid-delete leaves no half generation.
                    trash = self.root / f".trash-{gen:06d}"
                    with contextlib.suppress(OSError):
                        os.rename(self.gen_dir(gen), trash)
                        trashed.append(trash)
        for trash in trashed:  # deleted outside the lease lock: readers taking a lease need not wait for it
            _step("pruning")
            shutil.rmtree(trash, ignore_errors=True)
