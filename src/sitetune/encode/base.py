"""The encoder interface and the torch backend."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.models import load_sentence_transformer, resolve_model_path, use_bf16
from sitetune.modelinfo import ModelInfo, load_model_info

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Encoder(Protocol):
    """Turns texts into unit-length float32 vectors.

    Attributes:
        dim: Vector size.
        info: How the model wants documents and queries written.
        model_path: The model folder it was loaded from.
    """

    dim: int
    info: ModelInfo
    model_path: Path

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode raw strings (already formatted) into an (n, dim) float32 array of unit rows."""
        ...


class TorchEncoder:
    """sentence-transformers on torch; bf16 autocast where the CPU has AMX or AVX-512 BF16.

    Args:
        model: ``"base"`` or a model folder.
        config: Precision, batch size and threads.
    """

    def __init__(self, model: str | Path, config: EncoderConfig | None = None) -> None:
        import torch

        self.config = config or EncoderConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.model_path = resolve_model_path(model)
        self.model: SentenceTransformer = load_sentence_transformer(self.model_path)
        self.model.eval()
        self.info = load_model_info(self.model_path)
        self.bf16 = use_bf16(self.config.precision)
        dim = self.model.get_sentence_embedding_dimension()
        self.dim = int(dim) if dim else 384

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=show_progress,
            )
        return np.asarray(vectors, dtype=np.float32)


def load_encoder(model: str | Path, config: EncoderConfig | None = None) -> Encoder:
    """Load an encoder for ``model`` with the backend ``config.backend`` names.

    Raises:
        SitetuneError: Unknown backend, or the model folder cannot be loaded.
    """
    from sitetune.errors import SitetuneError

    config = config or EncoderConfig()
    if config.backend == "torch":
        return TorchEncoder(model, config)
    raise SitetuneError(f"unknown encoder backend '{config.backend}' (available: torch)")
