"""Encoders in a long-running service: load once, encode off the event loop.

``serve`` answers many requests with one model: :func:`shared_encoder` loads it once per (model, config)
and hands the same object to every caller. :class:`EncodeWorker` runs encodes on one dedicated thread,
so an ``async`` request handler awaits the vectors while the event loop keeps serving other requests
(health checks, static files, requests waiting on I/O). One thread, because the encoders already use
every physical core per call: two encodes at once would only share the cores and both finish later.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.encode.base import Encoder, load_encoder
from sitetune.models import resolve_model_path


def shared_encoder(model: str | Path, config: EncoderConfig | None = None) -> Encoder:
    """The process-wide encoder for ``model`` and ``config``: loaded on first call, then reused.

    Args:
        model: ``"base"`` or a model folder (the same folder by another spelling is the same encoder).
        config: Encoder settings; a different config is a different encoder.
    """
    return _cached(str(resolve_model_path(model).resolve()), config or EncoderConfig())


@functools.lru_cache(maxsize=4)
def _cached(model_path: str, config: EncoderConfig) -> Encoder:
    return load_encoder(model_path, config)


class EncodeWorker:
    """Runs an encoder on one background thread for ``async`` callers.

    Example:
        worker = EncodeWorker(shared_encoder(model))
        vectors = await worker.encode([info.query(q)])

    Args:
        encoder: The encoder to run (shared, loaded once).
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitetune-encode")

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode on the worker thread; the calling event loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self.encoder.encode, list(texts)))

    def close(self) -> None:
        """Stop the worker thread after the encodes already queued."""
        self._pool.shutdown(wait=True)
