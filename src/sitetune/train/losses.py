"""Cheaper ways to compute sentence-transformers' losses on a CPU: length-sorted mini-batches, one forward.

The data collator pads each column of a batch to the batch's longest text. Anchors (titles, questions,
sentences) are a few dozen tokens and sections a few hundred, with a long tail, so most of a padded batch is
padding. :class:`LengthSortedMNRLoss` embeds each column in mini-batches of rows sorted by token count, each
cut to its own longest row, then computes the loss of sentence-transformers'
``MultipleNegativesRankingLoss`` on the embeddings (same loss, same gradient).
:class:`LengthSortedCosineLoss` does the same for the card recipe's ``CosineSimilarityLoss``: the reference
corpus's card pairs are half padding (2.0 padded tokens per real one; 1.2 in sorted mini-batches of 8).

Unlike ``CachedMultipleNegativesRankingLoss`` it runs one forward pass with gradients: the cached loss
first embeds everything without gradients to cache the embedding gradients, then embeds again with them,
which saves memory (a GPU's concern) at the price of a third more compute. At this model's size a batch's
activations fit easily in a CPU's memory, so the second forward is pure cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn


class LengthSortedMNRLoss(nn.Module):
    """MultipleNegativesRankingLoss over (anchor, positive[, negative]) columns, embedded with little padding.

    Args:
        model: The SentenceTransformer being trained.
        scale: Similarity scale (inverse temperature), as in MultipleNegativesRankingLoss.
        mini_batch_size: Rows per forward pass; each pass is padded only to its own longest row.
    """

    def __init__(self, model: Any, scale: float = 20.0, mini_batch_size: int = 16) -> None:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        super().__init__()
        if mini_batch_size < 1:
            raise ValueError("mini_batch_size must be at least 1")
        self.model = model
        self.mnrl = MultipleNegativesRankingLoss(model, scale=scale)
        self.mini_batch_size = mini_batch_size

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Tensor) -> Tensor:
        embeddings = [self.embed_sorted(features) for features in sentence_features]
        return self.mnrl.compute_loss_from_embeddings(embeddings, labels)

    def embed_sorted(self, features: dict[str, Any]) -> Tensor:
        """Embed one column's rows in length-sorted mini-batches (see :func:`embed_length_sorted`)."""
        return embed_length_sorted(self.model, features, self.mini_batch_size)

    def get_config_dict(self) -> dict[str, Any]:
        """What the model card lists as the loss's parameters."""
        return {"scale": self.mnrl.scale, "mini_batch_size": self.mini_batch_size}

    @property
    def citation(self) -> str:
        return str(self.mnrl.citation)


class LengthSortedCosineLoss(nn.Module):
    """CosineSimilarityLoss (MSE between the pair's cosine and its label), embedded with little padding.

    Each pair's loss depends on its own two embeddings only, so embedding a column in any grouping gives
    the same loss and gradient; only the padding, and so the cost, changes.

    Args:
        model: The SentenceTransformer being trained.
        mini_batch_size: Rows per forward pass; each pass is padded only to its own longest row.
    """

    def __init__(self, model: Any, mini_batch_size: int = 8) -> None:
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

        super().__init__()
        if mini_batch_size < 1:
            raise ValueError("mini_batch_size must be at least 1")
        self.model = model
        self.cosine = CosineSimilarityLoss(model)
        self.mini_batch_size = mini_batch_size

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Tensor) -> Tensor:
        embeddings = [embed_length_sorted(self.model, f, self.mini_batch_size) for f in sentence_features]
        return self.cosine.compute_loss_from_embeddings(embeddings, labels)

    def get_config_dict(self) -> dict[str, Any]:
        """What the model card lists as the loss's parameters (CosineSimilarityLoss's, and the grouping)."""
        return {**self.cosine.get_config_dict(), "mini_batch_size": self.mini_batch_size}


def embed_length_sorted(model: Any, features: dict[str, Any], mini_batch_size: int) -> Tensor:
    """Embed one column's rows, shortest first in mini-batches, and return them in the original order."""
    mask = features["attention_mask"]
    width = mask.shape[1]
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    parts: list[Tensor] = []
    for begin in range(0, len(order), mini_batch_size):
        rows = order[begin : begin + mini_batch_size]
        # The tokenizer pads on the right: columns past the longest row of these rows are all padding.
        longest = int(lengths[rows].max())
        mini = {key: _rows_of(value, rows, width, longest) for key, value in features.items()}
        parts.append(model(mini)["sentence_embedding"])
    return torch.cat(parts)[torch.argsort(order)]


def _rows_of(value: Any, rows: Tensor, width: int, longest: int) -> Any:
    """``rows`` of a per-row feature, token-level ones cut to ``longest`` columns; anything else as is."""
    if not isinstance(value, Tensor) or value.dim() == 0:
        return value
    if value.dim() == 2 and value.shape[1] == width:
        return value[rows, :longest]
    return value[rows]
