"""Length-sorted batches with dynamic padding, and the original order restored.

Padding every text in a batch to the batch's longest wastes compute on pad tokens; sorting by token
count first keeps each batch's lengths close, so a batch pads only to its own longest member. The
output rows are written back at each text's original position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Batch:
    """One padded batch.

    Attributes:
        index: Positions of its texts in the caller's sequence.
        input_ids: (b, t) int64 token ids, right-padded.
        attention_mask: (b, t) int64, 1 on real tokens.
    """

    index: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to ``max_length`` exactly as sentence-transformers does."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def sorted_batches(ids: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Yield batches of ``ids``, longest first, each padded to its own longest member.

    Longest first so the peak memory is reached (and fails, if it must) at once rather than at the end.
    """
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = int(lengths[index].max())
        input_ids = np.full((len(index), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(index), width), dtype=np.int64)
        for row, i in enumerate(index):
            n = int(lengths[i])
            input_ids[row, :n] = ids[i]
            mask[row, :n] = 1
        yield Batch(index=index, input_ids=input_ids, attention_mask=mask)


def encode_in_order(
    ids: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    dim: int,
    forward: Callable[[Batch], np.ndarray],
    *,
    show_progress: bool = False,
) -> np.ndarray:
    """Run ``forward`` over length-sorted batches; return (n, dim) float32 rows in the input order.

    With ``show_progress`` a bar on stderr counts texts encoded (indexing a large corpus takes minutes).
    """
    out = np.empty((len(ids), dim), dtype=np.float32)
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc="encode", unit="text", leave=False)
    try:
        for batch in sorted_batches(ids, batch_size, pad_id):
            out[batch.index] = forward(batch)
            if bar is not None:
                bar.update(len(batch.index))
    finally:
        if bar is not None:
            bar.close()
    return out


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in float32 (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out
