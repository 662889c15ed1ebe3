"""Torch backends: the lean one sitetune uses, and plain sentence-transformers as the reference.

``TorchEncoder`` tokenises once, sorts by token count, pads each batch only to its own longest text and
runs the sentence-transformers modules (transformer, pooling, normalisation: whatever the model folder
declares) on it, so pooling matches the model exactly. On a CPU with bf16 units (AMX or AVX-512 BF16)
the weights are cast to bfloat16 once: measured faster than autocast, which re-casts every weight on
every call, at cosine ≥ 0.9999 to fp32.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.encode.batching import Batch, encode_in_order, normalize_rows, tokenize
from sitetune.encode.threads import choose_threads, set_torch_threads
from sitetune.modelinfo import load_model_info
from sitetune.models import load_sentence_transformer, resolve_model_path, use_bf16

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def embedding_dim(model: SentenceTransformer) -> int:
    """The model's output size (sentence-transformers renamed the getter in 6.x; both are tried)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    return int(dim) if dim else 384


class _SentenceTransformerOnTorch:
    """What both torch encoders hold: the config, the thread count, the loaded model and its facts."""

    model_path: Path
    model: SentenceTransformer

    def _load(self, model: str | Path, config: EncoderConfig | None) -> None:
        self.config = config or EncoderConfig()
        self.threads = choose_threads(self.config.threads)
        set_torch_threads(self.threads)
        self.model_path = resolve_model_path(model)
        self.model = load_sentence_transformer(self.model_path)
        self.model.eval()
        self.info = load_model_info(self.model_path)
        self.dim = embedding_dim(self.model)


class TorchEncoder(_SentenceTransformerOnTorch):
    """The model's own modules on torch, with length-sorted batches; bf16 weights where the CPU has them.

    Use it where no exported backend exists or exactness to the training framework matters; it needs
    nothing beyond the project's core dependencies.

    Args:
        model: ``"base"`` or a model folder.
        config: Precision (``auto``: bf16 on CPUs with bf16 units), batch size and threads.
    """

    backend = "torch"

    def __init__(self, model: str | Path, config: EncoderConfig | None = None) -> None:
        import torch

        self._load(model, config)
        self.bf16 = use_bf16(self.config.precision)
        if self.bf16:
            self.model.to(torch.bfloat16)
        self.precision = "bf16" if self.bf16 else "fp32"
        self.max_length = int(self.model.max_seq_length or 512)
        tokenizer = self.model.tokenizer
        self._tokenizer = tokenizer
        self._pad_id = int(tokenizer.pad_token_id or 0)
        # torch's intra-op pool is process-wide: two requests at once would halve each other's threads.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode texts into an (n, dim) float32 array of unit rows, in the input order."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = tokenize(self._tokenizer, texts, self.max_length)

        def forward(batch: Batch) -> np.ndarray:
            features = {
                "input_ids": torch.from_numpy(batch.input_ids),
                "attention_mask": torch.from_numpy(batch.attention_mask),
            }
            out = self.model(features)["sentence_embedding"]
            # Normalise in fp32: a bf16 norm leaves rows up to ~1e-3 off unit length.
            return normalize_rows(out.float().numpy())

        with self._lock, torch.inference_mode():
            set_torch_threads(self.threads)
            return encode_in_order(
                ids, self.config.batch_size, self._pad_id, self.dim, forward, show_progress=show_progress
            )


class SentenceTransformersEncoder(_SentenceTransformerOnTorch):
    """Plain ``SentenceTransformer.encode`` in fp32: the reference every other backend is measured against.

    Slow on purpose (no bf16, no export); use it for quality baselines, not for serving.
    """

    backend = "sentence-transformers"
    precision = "fp32"

    def __init__(self, model: str | Path, config: EncoderConfig | None = None) -> None:
        self._load(model, config)

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode texts with sentence-transformers' own ``encode`` (fp32, its own length sorting)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            vectors = self.model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=show_progress,
            )
        return normalize_rows(np.asarray(vectors, dtype=np.float32))
