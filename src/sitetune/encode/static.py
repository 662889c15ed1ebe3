"""A static-embedding model distilled from the tuned model: one vector per vocabulary token.

For very large corpora, where even a fast transformer is too slow: encoding is a table lookup and a mean,
thousands of times faster, at a stated quality cost (see docs/encode.md). The recipe is Model2Vec's
(Tulkens & van Dongen 2024), done here with the project's own dependencies because ``model2vec[distill]``
pulls ``skeletoken``, which downgrades transformers to 5.3:

1. every vocabulary token goes through the model alone (``[CLS] token [SEP]``, the model's own pooling);
2. PCA centres the vectors and keeps 256 dimensions (removing the direction all tokens share);
3. each vector is weighted by SIF, ``a / (a + p(token))``, with ``p`` from the site's own sections
   (blended with a Zipf prior on vocabulary rank for tokens the site never uses), so frequent tokens count
   less — the weight is baked into the table, so encoding is ``normalise(mean of rows)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.encode.export import export_dir, read_manifest, write_manifest
from sitetune.encode.threads import choose_threads
from sitetune.modelinfo import load_model_info
from sitetune.models import resolve_model_path

STATIC = "static"
_TABLE, _TOKENIZER = "embeddings.npy", "tokenizer.json"
_PCA_DIMS = 256
_SIF_A = 1e-3


def export_static(
    model_path: Path, out: Path, *, texts: Sequence[str], config: EncoderConfig | None = None
) -> dict[str, Any]:
    """Distil ``model_path`` into a token table in ``out`` (see the module docstring for the recipe).

    Args:
        model_path: The model folder.
        out: An empty folder for ``embeddings.npy``, ``tokenizer.json`` and the manifest.
        texts: The site's own texts, for token frequencies.
        config: Precision, threads and batch size for running the model over the vocabulary.

    Returns:
        The manifest written.
    """
    from sitetune.encode.torch_backend import TorchEncoder

    encoder = TorchEncoder(model_path, config)
    tokenizer = encoder._tokenizer
    vocab: dict[str, int] = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    special = set(tokenizer.all_special_ids)
    kept = sorted(i for t, i in vocab.items() if i not in special and not t.startswith("[unused"))
    keep = np.array(kept, dtype=np.int64)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    token_inputs = [[cls_id, int(i), sep_id] if cls_id is not None else [int(i)] for i in keep]
    vectors = _run_model(encoder, token_inputs)

    centred = vectors - vectors.mean(axis=0, keepdims=True)
    dims = min(_PCA_DIMS, centred.shape[1])
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dims].T

    weights = _sif_weights(tokenizer, texts, keep, size)
    table = np.zeros((size, dims), dtype=np.float32)
    table[keep] = reduced * weights[:, None]
    np.save(out / _TABLE, table)
    (out / _TOKENIZER).write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    extra = {"dim": dims, "max_length": encoder.max_length, "vocab": len(keep), "texts": len(texts)}
    return write_manifest(out, STATIC, [_TABLE, _TOKENIZER], model_path, extra)


def _run_model(encoder: Any, token_inputs: list[list[int]]) -> np.ndarray:
    """Pooled, un-normalised outputs of the model for each (short) input: the raw token vectors."""
    import torch

    from sitetune.encode.batching import sorted_batches

    out = np.empty((len(token_inputs), encoder.dim), dtype=np.float32)
    with torch.inference_mode():
        for batch in sorted_batches(token_inputs, 1024, encoder._pad_id):
            features = {
                "input_ids": torch.from_numpy(batch.input_ids),
                "attention_mask": torch.from_numpy(batch.attention_mask),
            }
            # Before the model's Normalize module: the pooled vector keeps its magnitude, as Model2Vec does.
            result = encoder.model[0](features)
            result = encoder.model[1](result)
            out[batch.index] = result["sentence_embedding"].float().numpy()
    return out


def _sif_weights(tokenizer: Any, texts: Sequence[str], keep: np.ndarray, size: int) -> np.ndarray:
    """SIF weights for the kept token ids from the site's token counts blended with a Zipf prior."""
    counts = np.zeros(size, dtype=np.float64)
    for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1.0)
    rank = np.arange(1, len(keep) + 1, dtype=np.float64)
    zipf = 1.0 / (rank * np.log(len(keep)))
    observed = counts[keep] / counts.sum() if counts.sum() > 0 else zipf
    proba = 0.5 * (observed + zipf)
    weights: np.ndarray = (_SIF_A / (_SIF_A + proba)).astype(np.float32)
    return weights


class StaticEncoder:
    """A distilled token table: ``normalise(mean of token rows)``; no transformer at encode time.

    Use it for corpora too large to encode with the transformer, or as a first-stage retriever; its
    ranking quality is lower (measured in docs/encode.md). Made by ``sitetune export MODEL --backend
    static --corpus PAGES``.

    Raises:
        ExportError: The export is missing, corrupted or made from other weights.
    """

    backend = STATIC
    precision = "fp32"

    def __init__(self, model: str | Path, config: EncoderConfig | None = None) -> None:
        from tokenizers import Tokenizer

        self.config = config or EncoderConfig()
        self.model_path = resolve_model_path(model)
        self.info = load_model_info(self.model_path)
        self.export_path = export_dir(self.model_path, STATIC)
        manifest = read_manifest(self.export_path, STATIC, self.model_path)
        self.dim = int(manifest["dim"])
        self.threads = choose_threads(self.config.threads)
        self._table = np.load(self.export_path / _TABLE)
        self._tokenizer = Tokenizer.from_file(str(self.export_path / _TOKENIZER))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode texts into an (n, dim) float32 array of unit rows (a text with no known token is zero)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import scipy.sparse

        # Ids only (no offsets) where the tokenizers library can.
        tokenize = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = tokenize(list(texts), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        flat = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        # Sum of each text's token rows as a sparse (texts x vocabulary) count matrix times the table: no
        # (tokens x dim) gather (2 GB for 8,192 sections of ~250 tokens), ~25x faster.
        indptr = np.concatenate(([0], np.cumsum(lengths)))
        counts = scipy.sparse.csr_matrix((np.ones(len(flat), dtype=np.float32), flat, indptr),
                                         shape=(len(texts), self._table.shape[0]))
        out = np.asarray(counts @ self._table, dtype=np.float32)
        # The mean's 1/n is dropped: normalisation removes it.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: np.ndarray = out / np.maximum(norms, 1e-12)
        return unit
