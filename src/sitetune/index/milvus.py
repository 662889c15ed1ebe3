"""Milvus backends: Milvus Lite (``milvus://PATH.db``, in-process) and a server (``http://HOST:19530``).

The collection holds one row per chunk (``id`` = chunk_id, ``vector``, ``doc_hash``); the chunk records,
the BM25 index and the manifest live in a local sidecar directory (an :class:`EmbeddedStore` without
vectors): ``PATH.db.sitetune/`` for Lite, ``~/.cache/sitetune/milvus/HOST_PORT_COLLECTION/`` for a server.
Re-indexing upserts only new or changed rows and deletes removed ones; the sidecar generation is written
last, and searches only return ids the sidecar knows, so a crash between the two never shows a phantom.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.errors import SitetuneError
from sitetune.index.store import EmbeddedStore, Generation, StoreError

DEFAULT_COLLECTION = "sitetune_chunks"
_BATCH = 1000


def is_milvus_uri(store: str) -> bool:
    """Whether ``store`` names a Milvus backend rather than an embedded store directory."""
    return store.startswith(("milvus://", "http://", "https://", "tcp://"))


class MilvusStore:
    """A chunk collection in Milvus plus its local sidecar.

    Args:
        uri: ``milvus://PATH.db`` (Milvus Lite) or ``http(s)://HOST:PORT[/COLLECTION]`` (a server).

    Call :meth:`close` when done: Milvus Lite runs a server process for the open client.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.collection = DEFAULT_COLLECTION
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
                raise SitetuneError(
                    f"not a Milvus server URI: {uri} (expected http://HOST:19530[/COLLECTION])"
                )
            self.collection = match.group(2) or DEFAULT_COLLECTION
            self.client_uri = uri if match.group(2) is None else uri[: uri.rindex("/")]
            name = re.sub(r"\W", "_", f"{match.group(1)}_{self.collection}")
            self.sidecar = EmbeddedStore(Path.home() / ".cache" / "sitetune" / "milvus" / name)
            self.lite = False
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise SitetuneError(
                    "Milvus stores need pymilvus: pip install 'pymilvus' 'milvus-lite'"
                ) from exc
            if self.lite:
                Path(self.client_uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._client = MilvusClient(self.client_uri)
            except Exception as exc:  # pymilvus raises many types for an unreachable or broken store
                raise SitetuneError(f"cannot open Milvus at {self.uri}: {exc}") from exc
        return self._client

    def close(self) -> None:
        """Close the client (and stop Milvus Lite's server process)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def load(self) -> Generation:
        """The sidecar's current generation (records, BM25, manifest; ``vectors`` is ``None``)."""
        return self.sidecar.load()

    def _create(self, dim: int) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_hash", DataType.VARCHAR, max_length=64)
        params = client.prepare_index_params()
        # Lite: exact FLAT search; a server: AUTOINDEX (HNSW), approximate and fast at scale.
        params.add_index(
            field_name="vector", index_type="FLAT" if self.lite else "AUTOINDEX", metric_type="IP"
        )
        client.create_collection(self.collection, schema=schema, index_params=params)

    def sync(
        self,
        ids: Sequence[str],
        doc_hashes: Sequence[str],
        vectors: np.ndarray,
        removed: Sequence[str],
        *,
        dim: int,
        rebuild: bool,
    ) -> None:
        """Upsert ``ids``'s rows and delete ``removed``; ``rebuild`` drops the collection first.

        Args:
            ids: Chunk ids whose vectors are new or changed.
            doc_hashes: One per id.
            vectors: (len(ids), dim) float32.
            removed: Chunk ids no longer in the corpus.
            dim: Vector size (the collection is recreated if it differs).
            rebuild: Drop everything first (another model embedded the old rows).
        """
        client = self.client
        if client.has_collection(self.collection):
            fields = client.describe_collection(self.collection).get("fields", [])
            old_dim = next(
                (f.get("params", {}).get("dim") for f in fields if f.get("name") == "vector"), None
            )
            if rebuild or (old_dim is not None and int(old_dim) != dim):
                client.drop_collection(self.collection)
        if not client.has_collection(self.collection):
            self._create(dim)
        for start in range(0, len(ids), _BATCH):
            rows = [
                {"id": ids[i], "vector": vectors[i].tolist(), "doc_hash": doc_hashes[i]}
                for i in range(start, min(start + _BATCH, len(ids)))
            ]
            client.upsert(self.collection, rows)
        for start in range(0, len(removed), _BATCH):
            client.delete(self.collection, ids=list(removed[start : start + _BATCH]))
        client.load_collection(self.collection)

    def present(self) -> dict[str, str]:
        """chunk_id -> doc_hash of every row in the collection (to know what a re-index may keep)."""
        client = self.client
        if not client.has_collection(self.collection):
            return {}
        client.load_collection(self.collection)
        out: dict[str, str] = {}
        iterator = client.query_iterator(
            self.collection, batch_size=_BATCH, filter="", output_fields=["doc_hash"]
        )
        try:
            while batch := iterator.next():
                out.update({row["id"]: row["doc_hash"] for row in batch})
        finally:
            iterator.close()
        return out

    def search(
        self, query: np.ndarray, k: int, allowed: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (chunk_id, inner product) for a unit query vector, optionally within ``allowed``."""
        flt = ""
        if allowed is not None:
            if not allowed:
                return []
            flt = "id in [" + ",".join(f'"{i}"' for i in allowed) + "]"
        result = self.client.search(
            self.collection,
            data=[query.astype(np.float32).tolist()],
            limit=k,
            filter=flt,
            anns_field="vector",
            search_params={"metric_type": "IP"},
            output_fields=["id"],
        )
        return [(str(hit["id"]), float(hit["distance"])) for hit in result[0]]
