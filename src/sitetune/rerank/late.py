"""Late interaction with the bi-encoder's own token vectors (ColBERT's MaxSim, no extra training).

The bi-encoder pools a section into one vector; its transformer still gives a vector per token. For each
question token, the most similar token of the candidate counts; the candidate's score is the mean over
the question's tokens (Khattab and Zaharia, SIGIR 2020). [CLS], [SEP] and padding are left out. The
candidates' token vectors are cached by text (fp16), so a section is encoded once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sitetune.config import EncoderConfig, RerankerKind
from sitetune.encode.threads import choose_threads, set_torch_threads
from sitetune.models import load_sentence_transformer, use_bf16

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class LateInteractionReranker:
    """Token-level max-sim of the question and each candidate with a bi-encoder's transformer.

    Args:
        model: ``"base"`` or a bi-encoder folder.
        config: Precision, threads and batch size.
        max_cache: Candidate texts whose token vectors are kept (cleared when full).
    """

    kind = RerankerKind.LATE_INTERACTION

    def __init__(self, model: str | Path, config: EncoderConfig | None = None, *, max_cache: int = 20_000) -> None:
        import torch

        self.config = config or EncoderConfig()
        self.threads = choose_threads(self.config.threads)
        set_torch_threads(self.threads)
        self.model: SentenceTransformer = load_sentence_transformer(model)
        self.model.eval()
        if use_bf16(self.config.precision):
            self.model.to(torch.bfloat16)
        self.max_cache = max_cache
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Unit token vectors of each text, special tokens dropped, (tokens, dim) float32 each."""
        import torch

        out: list[np.ndarray] = []
        if not texts:
            return out
        tokenizer = self.model.tokenizer
        max_length = int(self.model.max_seq_length or 256)
        transformer = self.model[0]
        with self._lock, torch.inference_mode():
            set_torch_threads(self.threads)
            for start in range(0, len(texts), self.config.batch_size):
                batch = list(texts[start : start + self.config.batch_size])
                enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                special = enc.pop("special_tokens_mask", None)
                tokens = transformer({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
                vectors = tokens["token_embeddings"].float().numpy()
                keep = enc["attention_mask"].numpy().astype(bool)
                if special is None:
                    ids = enc["input_ids"].numpy()
                    keep &= ~np.isin(ids, [tokenizer.cls_token_id, tokenizer.sep_token_id])
                for row in range(len(batch)):
                    v = vectors[row][keep[row]]
                    norms = np.linalg.norm(v, axis=1, keepdims=True)
                    out.append(v / np.maximum(norms, 1e-12))
        return out

    def _documents(self, documents: Sequence[str]) -> list[np.ndarray]:
        missing = list(dict.fromkeys(d for d in documents if d not in self._cache))
        if missing:
            encoded = self.token_vectors(missing)
            if len(self._cache) + len(missing) > self.max_cache:
                self._cache.clear()
            self._cache.update((d, v.astype(np.float16)) for d, v in zip(missing, encoded, strict=True))
        return [self._cache[d] if d in self._cache else self.token_vectors([d])[0] for d in documents]

    def scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Mean over the question's tokens of their best cosine with a candidate's tokens."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        q = self.token_vectors([query])[0]
        out = np.zeros(len(documents), dtype=np.float32)
        if not len(q):
            return out
        for i, d in enumerate(self._documents(documents)):
            if len(d):
                out[i] = float((q @ d.astype(np.float32).T).max(axis=1).mean())
        return out
