"""Milvus backends: Milvus Lite (``milvus://PATH.db``, in-process) and a server (``http://HOST:19530``).

The vectors live in one collection per model, ``COLLECTION_<fingerprint[:12]>`` (``COLLECTION`` is
``sitetune_chunks`` unless the URI names another), one row per chunk (``id`` = chunk_id, ``vector``,
``doc_hash``); the chunk records, the BM25 index and the manifest live in a local sidecar directory (an
:class:`EmbeddedStore` without vectors): ``PATH.db.sitetune/`` for Lite,
``$SITETUNE_CACHE_DIR/milvus/HOST_PORT_COLLECTION/`` (default ``~/.cache/sitetune/...``) for a server.

A re-index upserts the rows the model's collection lacks (new or changed chunks, or rows an interrupted
run never wrote), waits until the server shows them, writes the sidecar generation, and only then deletes
rows no longer in the corpus and the collections of other models. Until the sidecar switches, readers
keep the previous generation and its collection whole; searches only return ids the sidecar knows; so a
failure at any point leaves a consistent store, and the next run resumes from what the collection holds.

Every call has a timeout (``SITETUNE_MILVUS_TIMEOUT_S``, default 30 s): a server that is down, or goes
away mid-call, gives a :class:`StoreError` naming the URI and the operation instead of minutes of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sitetune.environment import cache_dir, number_from_env
from sitetune.errors import SitetuneError
from sitetune.index.store import EmbeddedStore, Generation, StoreError

DEFAULT_COLLECTION = "sitetune_chunks"
DEFAULT_TIMEOUT_S = 30.0
TIMEOUT_ENV = "SITETUNE_MILVUS_TIMEOUT_S"
_BATCH = 1000
SEARCH_EF = 256
_FINGERPRINT_CHARS = 12
T = TypeVar("T")


def is_milvus_uri(store: str) -> bool:
    """Whether ``store`` names a Milvus backend rather than an embedded store directory."""
    return store.startswith(("milvus://", "http://", "https://", "tcp://"))


def _timeout_from_env() -> float:
    return number_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, float, lambda s: s > 0, "a positive number of seconds")


def _quiet_pymilvus() -> None:
    """Keep pymilvus's own log lines (retries, reconnects, tracebacks) off the user's terminal.

    pymilvus logs every failed attempt on stderr, with tracebacks, through handlers of its own; each
    failure here becomes one StoreError naming the URI, the operation and pymilvus's reason, so those
    lines only bury it. ``SITETUNE_MILVUS_LOG=1`` leaves them on for debugging.
    """
    if os.environ.get("SITETUNE_MILVUS_LOG"):
        return
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_line(exc: BaseException) -> str:
    # pymilvus messages carry the gRPC status and sometimes a multi-line debug string: keep the gist.
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]


class MilvusStore:
    """A model's chunk collection in Milvus plus the local sidecar.

    Args:
        uri: ``milvus://PATH.db`` (Milvus Lite) or ``http(s)://HOST:PORT[/COLLECTION]`` (a server).
        timeout_s: Limit of every call to Milvus (connecting included); default from
            ``SITETUNE_MILVUS_TIMEOUT_S``, else 30 s.

    Call :meth:`close` when done: Milvus Lite runs a server process for the open client.
    """

    def __init__(self, uri: str, timeout_s: float | None = None) -> None:
        self.uri = uri
        self.name = DEFAULT_COLLECTION
        self.timeout_s = timeout_s if timeout_s is not None else _timeout_from_env()
        if uri.startswith("milvus://"):
            db = uri.removeprefix("milvus://")
            if not db.endswith(".db"):
                raise StoreError(f"a Milvus Lite store must be a .db file: milvus://PATH.db, got {uri}")
            self.client_uri = str(Path(db).resolve())
            self.sidecar = EmbeddedStore(Path(db).resolve().parent / (Path(db).name + ".sitetune"))
            self.lite = True
        else:
            match = re.match(r"^(?:https?|tcp)://([^/]+)(?:/(\w+))?/?$", uri)
            if not match:
                raise SitetuneError(f"not a Milvus server URI: {uri} (expected http://HOST:19530[/COLLECTION])")
            self.name = match.group(2) or DEFAULT_COLLECTION
            self.client_uri = uri if match.group(2) is None else uri[: uri.rindex("/")]
            folder = re.sub(r"\W", "_", f"{match.group(1)}_{self.name}")
            self.sidecar = EmbeddedStore(cache_dir() / "milvus" / folder)
            self.lite = False
        #: The collection searched and written: set by :meth:`use_model` (from a manifest's fingerprint).
        self.collection = ""
        self._client: Any = None

    # --- plumbing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn whatever pymilvus raises inside into a StoreError naming the URI and the operation."""
        try:
            yield
        except SitetuneError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException, grpc errors, timeouts, OSError...
            raise StoreError(f"Milvus at {self.uri}: {what} failed: {_one_line(exc)}") from exc

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client call with the timeout, under :meth:`_guard`."""
        with self._guard(what):
            return fn(*args, timeout=self.timeout_s, **kwargs)

    @property
    def client(self) -> Any:
        """The pymilvus client, connected on first use."""
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise SitetuneError("Milvus stores need pymilvus: pip install 'pymilvus' 'milvus-lite'") from exc
            _quiet_pymilvus()
            if self.lite:
                Path(self.client_uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._client = MilvusClient(self.client_uri, timeout=self.timeout_s)
            except Exception as exc:  # pymilvus raises many types for an unreachable or broken store
                hint = "" if self.lite else " (is the server running and reachable?)"
                raise StoreError(f"cannot connect to Milvus at {self.uri}{hint}: {_one_line(exc)}") from exc
        return self._client

    def close(self) -> None:
        """Close the client (and stop Milvus Lite's server process); never raises."""
        if self._client is not None:
            client, self._client = self._client, None
            # A server that went away cannot be said goodbye to; nothing is lost by not trying harder.
            with contextlib.suppress(Exception):
                client.close()

    def load(self, generation: int | None = None) -> Generation:
        """The sidecar's current generation, or exactly ``generation``, under a reader lease.

        Records, BM25 and manifest; ``vectors`` is ``None``.
        """
        return self.sidecar.load(generation, lease=True)

    def collection_for(self, fingerprint: str) -> str:
        """The collection holding the vectors of the model with this fingerprint."""
        return f"{self.name}_{fingerprint[:_FINGERPRINT_CHARS]}"

    def use_model(self, fingerprint: str) -> str:
        """Select the collection of the model with this fingerprint; returns its name."""
        self.collection = self.collection_for(fingerprint)
        return self.collection

    def has_collection(self) -> bool:
        """Whether the selected collection exists."""
        return bool(self._call("checking the collection", self.client.has_collection, self.collection))

    def load_collection(self) -> None:
        """Load the selected collection into the server's memory (searches need it)."""
        self._call("loading the collection", self.client.load_collection, self.collection)

    def _create(self, dim: int) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_hash", DataType.VARCHAR, max_length=64)
        params = client.prepare_index_params()
        # Lite: exact FLAT search; a server: AUTOINDEX (HNSW) on sealed segments, approximate and fast at
        # scale (segments below the server's index threshold, ~1k rows, are scanned exactly).
        params.add_index(field_name="vector", index_type="FLAT" if self.lite else "AUTOINDEX", metric_type="IP")
        self._call(
            "creating the collection",
            client.create_collection,
            self.collection,
            schema=schema,
            index_params=params,
            consistency_level="Bounded",
        )

    def _wait_visible(self) -> None:
        # A Strong read returns only once the server has applied every write before it; after it, searches
        # at the collection's Bounded consistency (from any client) see every row written so far. Searches
        # themselves stay Bounded: a Strong search waits for the server's next time tick, ~200 ms each
        # (measured on Milvus 2.3.5: 200 ms p50 Strong, 1.8 ms Bounded, for 64 rows).
        self._call(
            "waiting for the writes to become visible",
            self.client.query,
            self.collection,
            filter="",
            output_fields=["count(*)"],
            consistency_level="Strong",
        )

    # --- writing -----------------------------------------------------------------------------------

    def present(self) -> dict[str, str]:
        """chunk_id -> doc_hash of every row in the selected collection (what a re-index may keep)."""
        if not self.has_collection():
            return {}
        self.load_collection()
        out: dict[str, str] = {}
        iterator = self._call(
            "listing the rows",
            self.client.query_iterator,
            self.collection,
            batch_size=_BATCH,
            filter="",
            output_fields=["doc_hash"],
            consistency_level="Strong",
        )
        try:
            while True:
                with self._guard("listing the rows"):
                    batch = iterator.next()
                if not batch:
                    break
                out.update({row["id"]: row["doc_hash"] for row in batch})
        finally:
            with contextlib.suppress(Exception):  # closing a broken iterator must not hide the error
                iterator.close()
        return out

    def upsert(self, ids: Sequence[str], doc_hashes: Sequence[str], vectors: np.ndarray, *, dim: int) -> None:
        """Create the selected collection if needed, upsert these rows and wait until they are visible.

        Args:
            ids: Chunk ids whose vectors are new or changed.
            doc_hashes: One per id.
            vectors: (len(ids), dim) float32 unit rows.
            dim: Vector size.
        """
        if not self.has_collection():
            self._create(dim)
        for start in range(0, len(ids), _BATCH):
            rows = [
                {"id": ids[i], "vector": vectors[i].tolist(), "doc_hash": doc_hashes[i]}
                for i in range(start, min(start + _BATCH, len(ids)))
            ]
            self._call(f"upserting rows {start}-{start + len(rows)}", self.client.upsert, self.collection, rows)
        self.load_collection()
        self._wait_visible()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete rows from the selected collection."""
        for start in range(0, len(ids), _BATCH):
            batch = list(ids[start : start + _BATCH])
            self._call("deleting removed rows", self.client.delete, self.collection, ids=batch)
        if ids:
            self._wait_visible()

    def drop_other_models(self) -> list[str]:
        """Drop this store's collections of other models (left by an earlier model); returns their names."""
        pattern = re.compile(rf"^{re.escape(self.name)}_[0-9a-f]{{{_FINGERPRINT_CHARS}}}$")
        names = self._call("listing collections", self.client.list_collections)
        dropped = [n for n in names if pattern.match(n) and n != self.collection]
        for name in dropped:
            self._call(f"dropping collection {name}", self.client.drop_collection, name)
        return dropped

    # --- reading -----------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, allowed: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk_id, inner product) for a unit query vector, optionally within ``allowed``."""
        flt = ""
        if allowed is not None:
            if not allowed:
                return []
            flt = "id in [" + ",".join(f'"{i}"' for i in allowed) + "]"
        result = self._call(
            "searching",
            self.client.search,
            self.collection,
            data=[query.astype(np.float32).tolist()],
            limit=k,
            filter=flt,
            anns_field="vector",
            # HNSW's beam on a server (FLAT ignores it): the default (ef = k) gave recall@10 0.84 at 100k
            # clustered vectors, a beam of 256 what the embedded store's HNSW needs for 0.98 at that size.
            search_params={"metric_type": "IP", "params": {"ef": max(k, SEARCH_EF)}},
            output_fields=["id"],
            consistency_level="Bounded",
        )
        return [(str(hit["id"]), float(hit["distance"])) for hit in result[0]]
