"""The trained cross-encoder as a reranker: the question and each candidate read together."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sitetune.config import EncoderConfig, RerankerKind
from sitetune.encode.threads import choose_threads, set_torch_threads
from sitetune.models import prefer_local_files, use_bf16

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` folder on torch (bf16 where the CPU has it).

    Args:
        folder: The cross-encoder's folder (``MODEL/reranker``).
        config: Precision, threads and batch size (the encoder's settings).
    """

    kind = RerankerKind.CROSS_ENCODER

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
