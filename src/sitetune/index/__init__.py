"""Indexes: embedded generations (default) or Milvus, with records, vectors and BM25.

- :func:`build_index` embeds a corpus's unique chunks into a store (incrementally on re-index).
- :func:`open_store` opens a store for search (:class:`StoreReader`).
- :class:`VectorStore` is what both work through; :func:`open_backend` picks the embedded store or Milvus
  from the URI (the one place that tells them apart).
"""

from __future__ import annotations

from sitetune.index.backends import VectorStore, open_backend
from sitetune.index.build import IndexReport, bm25_text, build_index
from sitetune.index.reader import StoreReader, open_store
from sitetune.index.store import EmbeddedStore, Manifest, StoreError

__all__ = [
    "EmbeddedStore",
    "IndexReport",
    "Manifest",
    "StoreError",
    "StoreReader",
    "VectorStore",
    "bm25_text",
    "build_index",
    "open_backend",
    "open_store",
]
