"""The trained cross-encoder as a reranker: the question and each candidate read together.

It runs on torch (:class:`CrossEncoderReranker`) or on its OpenVINO export
(:class:`~sitetune.rerank.openvino_backend.OpenVINOCrossEncoderReranker`); :func:`load_cross_encoder` picks
the backend from the encoder's settings, by the same rules as the bi-encoder's.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sitetune.config import Backend, EncoderConfig, RerankerKind
from sitetune.encode.threads import choose_threads, set_torch_threads
from sitetune.errors import MissingDependencyError, SitetuneError
from sitetune.models import prefer_local_files, use_bf16

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

    from sitetune.rerank.openvino_backend import OpenVINOCrossEncoderReranker

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` folder on torch (bf16 where the CPU has it).

    Args:
        folder: The cross-encoder's folder (``MODEL/reranker``).
        config: Precision, threads and batch size (the encoder's settings).
    """

    kind = RerankerKind.CROSS_ENCODER
    backend = "torch"

    def __init__(self, folder: str | Path, config: EncoderConfig | None = None) -> None:
        import torch
        from sentence_transformers.cross_encoder import CrossEncoder

        prefer_local_files()
        self.config = config or EncoderConfig()
        self.folder = Path(folder)
        self.threads = choose_threads(self.config.threads)
        set_torch_threads(self.threads)
        self.model: CrossEncoder = CrossEncoder(str(self.folder), device="cpu", local_files_only=True)
        self.model.eval()
        self.bf16 = use_bf16(self.config.precision)
        if self.bf16:
            self.model.to(torch.bfloat16)
        self.precision = "bf16" if self.bf16 else "fp32"
        self._lock = threading.Lock()

    def scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """The cross-encoder's logit for each (query, document) pair."""
        import torch

        if not documents:
            return np.zeros(0, dtype=np.float32)
        with self._lock, torch.inference_mode():
            set_torch_threads(self.threads)
            out = self.model.predict(
                [(query, d) for d in documents],
                batch_size=self.config.batch_size,
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(-1)


def reranker_backend(encoder_backend: str) -> str:
    """The cross-encoder's backend for the bi-encoder's ``EncoderConfig.backend``.

    ``torch`` and ``sentence-transformers``: torch; ``openvino``: the OpenVINO export (it must exist);
    ``auto``, ``openvino-int8`` and ``static`` (bi-encoder choices with no cross-encoder counterpart):
    ``auto``, the OpenVINO export where the package is installed (exported on first use), else torch.
    """
    if encoder_backend in (Backend.TORCH.value, Backend.SENTENCE_TRANSFORMERS.value):
        return Backend.TORCH.value
    if encoder_backend == Backend.OPENVINO.value:
        return Backend.OPENVINO.value
    return Backend.AUTO.value


def load_cross_encoder(
    folder: str | Path, config: EncoderConfig | None = None
) -> CrossEncoderReranker | OpenVINOCrossEncoderReranker:
    """The cross-encoder in ``folder`` (``MODEL/reranker``) on the backend ``config.backend`` implies.

    See :func:`reranker_backend`. With ``auto`` a missing export is made here (seconds) and a failed
    export falls back to torch with a warning; an export that exists is loaded as it is, so one made
    from other weights is an error, as for the bi-encoder. ``config.fallback`` turns a missing, broken
    or stale export (or a missing ``openvino`` package) into torch with a warning instead of an error.

    Raises:
        ExportError: The OpenVINO export is missing (backend ``openvino``), corrupted or stale, and
            ``config.fallback`` is off.
        MissingDependencyError: Backend ``openvino`` without the ``openvino`` package, and no fallback.
    """
    from sitetune.encode.export import ExportError
    from sitetune.rerank.openvino_backend import (
        MANIFEST_FILE,
        OpenVINOCrossEncoderReranker,
        export_reranker,
        reranker_export_dir,
    )

    folder = Path(folder)
    config = config or EncoderConfig()
    backend = reranker_backend(config.backend)
    if backend == Backend.TORCH.value:
        return CrossEncoderReranker(folder, config)
    try:
        if backend == Backend.AUTO.value:
            if importlib.util.find_spec("openvino") is None:
                log.info("openvino is not installed: reranking with torch")
                return CrossEncoderReranker(folder, config)
            if not (reranker_export_dir(folder) / MANIFEST_FILE).is_file():
                try:
                    export_reranker(folder)
                except (SitetuneError, OSError, RuntimeError) as exc:
                    log.warning("could not export %s for openvino (%s): reranking with torch", folder, exc)
                    return CrossEncoderReranker(folder, config)
        return OpenVINOCrossEncoderReranker(folder, config)
    except (ExportError, MissingDependencyError) as exc:
        if not config.fallback:
            raise
        log.warning("%s; falling back to torch as asked", exc)
        return CrossEncoderReranker(folder, config)
