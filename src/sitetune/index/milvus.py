"""Milvus backends: Milvus Lite (``milvus://PATH.db``, in-process) and a server (``http://HOST:19530``).

Each generation's vectors live in a collection of their own, ``COLLECTION_gNNNNNN`` (``COLLECTION`` is
``sitetune_chunks`` unless the URI names another), one row per chunk (``id`` = chunk_id, ``vector``,
``doc_hash``); the chunk records, the BM25 index and the manifest (which names that collection) live in
a local sidecar directory (an :class:`EmbeddedStore` without vectors): ``PATH.db.sitetune/`` for Lite,
``$SITETUNE_CACHE_DIR/milvus/HOST_PORT_COLLECTION/`` (default ``~/.cache/sitetune/...``) for a server.
The alias ``COLLECTION`` names the current generation's collection, for other clients of the server.

A re-index (:meth:`sitetune.index.backends.MilvusBackend.write_generation`) fills the next generation's
collection (vectors of unchanged chunks copied from the previous collection, the rest encoded), checks it
(its row count, a probe search), commits the sidecar generation (the switch a running server follows),
then moves the alias and only then drops the collections no sidecar generation names any more (the
sidecar's prune keeps the previous generation and every generation a reader leases). So a reader's
collection stays whole as long as it holds its generation, and a failure before the switch leaves the
previous generation, its collection and the alias as they were; the next run resumes from what the new
collection holds. A re-index that changes nothing names the previous generation's collection again.

Stores written before (one collection per model, ``COLLECTION_<fingerprint[:12]>``, no alias: their
manifests name no collection) still open; their first re-index copies the vectors into a generation
collection and their old collection goes once no kept generation names it.

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
from sitetune.index.store import EmbeddedStore, Generation, Manifest, StoreError

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
    """A store's collections in Milvus (one per generation, behind an alias) plus the local sidecar.

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
        #: The collection searched: set by :meth:`use` (to the one an opened generation's manifest names).
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

    @property
    def alias(self) -> str:
        """The alias naming the current generation's collection (the store's collection name)."""
        return self.name

    def generation_collection(self, number: int) -> str:
        """The collection generation ``number`` writes its vectors to."""
        return f"{self.name}_g{number:06d}"

    def legacy_collection(self, fingerprint: str) -> str:
        """The one collection per model of stores written before each generation had its own."""
        return f"{self.name}_{fingerprint[:_FINGERPRINT_CHARS]}"

    def collection_of(self, manifest: Manifest) -> str:
        """The collection holding a sidecar generation's vectors (the legacy one if its manifest names none)."""
        return manifest.collection or self.legacy_collection(manifest.model_fingerprint)

    def use(self, collection: str) -> None:
        """Select the collection searched (and listed by :meth:`present`)."""
        self.collection = collection

    def has_collection(self, collection: str | None = None) -> bool:
        """Whether the collection (default: the selected one) exists."""
        name = collection or self.collection
        return bool(self._call("checking the collection", self.client.has_collection, name))

    def load_collection(self, collection: str | None = None) -> None:
        """Load the collection (default: the selected one) into the server's memory (searches need it)."""
        self._call("loading the collection", self.client.load_collection, collection or self.collection)

    def create(self, collection: str, dim: int, fingerprint: str) -> None:
        """Create an empty collection for vectors of the model with this fingerprint (kept as its description)."""
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False, description=fingerprint)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_hash", DataType.VARCHAR, max_length=64)
        params = client.prepare_index_params()
        # Lite: exact FLAT search; a server: AUTOINDEX (HNSW) on sealed segments, approximate and fast at
        # scale (segments below the server's index threshold, ~1k rows, are scanned exactly).
        params.add_index(field_name="vector", index_type="FLAT" if self.lite else "AUTOINDEX", metric_type="IP")
        self._call(
            f"creating the collection {collection}",
            client.create_collection,
            collection,
            schema=schema,
            index_params=params,
            consistency_level="Bounded",
        )

    def fingerprint_of(self, collection: str) -> str:
        """The model fingerprint a collection was created for ("" where the server keeps no description)."""
        info = self._call(f"describing the collection {collection}", self.client.describe_collection, collection)
        return str(info.get("description") or "")

    def count(self, collection: str | None = None) -> int:
        """Rows in the collection (default: the selected one), once every write before this call applies.

        A Strong read returns only once the server has applied every write before it; after it, searches
        at the collection's Bounded consistency (from any client) see every row written so far. Searches
        themselves stay Bounded: a Strong search waits for the server's next time tick, ~200 ms each
        (measured on Milvus 2.3.5: 200 ms p50 Strong, 1.8 ms Bounded, for 64 rows).
        """
        rows = self._call(
            "waiting for the writes to become visible",
            self.client.query,
            collection or self.collection,
            filter="",
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        return int(rows[0]["count(*)"]) if rows else 0

    # --- writing -----------------------------------------------------------------------------------

    def present(self, collection: str | None = None) -> dict[str, str]:
        """chunk_id -> doc_hash of every row in the collection (default: the selected one); {} if there is none."""
        name = collection or self.collection
        if not self.has_collection(name):
            return {}
        self.load_collection(name)
        out: dict[str, str] = {}
        iterator = self._call(
            "listing the rows",
            self.client.query_iterator,
            name,
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

    def fetch(self, collection: str, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """chunk_id -> (doc_hash, vector) of those of ``ids`` the collection holds."""
        self.load_collection(collection)
        out: dict[str, tuple[str, np.ndarray]] = {}
        for start in range(0, len(ids), _BATCH):
            rows = self._call(
                f"reading vectors from {collection}",
                self.client.get,
                collection,
                ids=list(ids[start : start + _BATCH]),
                output_fields=["vector", "doc_hash"],
            )
            for row in rows:
                out[str(row["id"])] = (str(row["doc_hash"]), np.asarray(row["vector"], dtype=np.float32))
        return out

    def upsert(
        self, collection: str, ids: Sequence[str], doc_hashes: Sequence[str], vectors: np.ndarray
    ) -> None:
        """Upsert rows into an existing collection (call :meth:`settle` once every write is made).

        Args:
            collection: The collection.
            ids: Chunk ids.
            doc_hashes: One per id.
            vectors: (len(ids), dim) float32 unit rows.
        """
        for start in range(0, len(ids), _BATCH):
            rows = [
                {"id": ids[i], "vector": vectors[i].tolist(), "doc_hash": doc_hashes[i]}
                for i in range(start, min(start + _BATCH, len(ids)))
            ]
            self._call(f"upserting rows {start}-{start + len(rows)}", self.client.upsert, collection, rows)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete rows from a collection."""
        for start in range(0, len(ids), _BATCH):
            batch = list(ids[start : start + _BATCH])
            self._call("deleting removed rows", self.client.delete, collection, ids=batch)

    def settle(self, collection: str) -> int:
        """Load the collection and wait until every write made to it is visible; returns its row count."""
        self.load_collection(collection)
        return self.count(collection)

    def check(self, collection: str, expected: int, probe_id: str | None) -> None:
        """Refuse a collection that does not hold ``expected`` rows or whose probe search finds nothing.

        Args:
            collection: The collection just written.
            expected: The generation's chunk count.
            probe_id: A chunk whose own vector is searched for (``None``: no probe, an empty generation).

        Raises:
            StoreError: The collection is not the generation it should be.
        """
        held = self.settle(collection)
        if held != expected:
            raise StoreError(
                f"Milvus at {self.uri}: the new collection {collection} holds {held:,} rows, not the "
                f"{expected:,} written"
            )
        if probe_id is None:
            return
        row = self.fetch(collection, [probe_id]).get(probe_id)
        hits = [] if row is None else self._search(collection, row[1], 1, "")
        if not hits:
            raise StoreError(f"Milvus at {self.uri}: a probe search in the new collection {collection} found no row")

    def alias_target(self) -> str | None:
        """The collection the store's alias names, or ``None`` when there is no alias (or it cannot be read)."""
        try:
            info = self._call("reading the alias", self.client.describe_alias, self.alias)
        except StoreError:
            return None
        return str(info.get("collection_name") or "") or None

    def switch_alias(self, collection: str) -> None:
        """Point the store's alias at ``collection`` in one server-side step (created the first time)."""
        current = self.alias_target()
        if current == collection:
            return
        if current is None:
            self._call(f"creating the alias {self.alias}", self.client.create_alias, collection, self.alias)
        else:
            self._call(f"switching the alias {self.alias}", self.client.alter_alias, collection, self.alias)

    def store_collections(self) -> list[str]:
        """This store's collections on the server: every generation's and the legacy per-model ones."""
        pattern = re.compile(rf"^{re.escape(self.name)}_(?:g\d{{6}}|[0-9a-f]{{{_FINGERPRINT_CHARS}}})$")
        names = self._call("listing collections", self.client.list_collections)
        return sorted(n for n in names if pattern.match(n))

    def drop(self, collection: str) -> None:
        """Drop a collection."""
        self._call(f"dropping collection {collection}", self.client.drop_collection, collection)

    # --- reading -----------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, allowed: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk_id, inner product) in the selected collection, optionally within ``allowed``."""
        flt = ""
        if allowed is not None:
            if not allowed:
                return []
            flt = "id in [" + ",".join(f'"{i}"' for i in allowed) + "]"
        return self._search(self.collection, query, k, flt)

    def _search(self, collection: str, query: np.ndarray, k: int, flt: str) -> list[tuple[str, float]]:
        result = self._call(
            "searching",
            self.client.search,
            collection,
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
