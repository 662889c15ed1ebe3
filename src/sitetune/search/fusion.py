"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009) of several rankings."""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, weights: Sequence[float] | None = None, k: int = 60
) -> list[tuple[str, float]]:
    """Fuse ranked id lists into one: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1.

    Args:
        rankings: Each a list of ids, best first (no repeats within one list).
        weights: One weight per ranking; all 1.0 when omitted.
        k: The smoothing constant; 60 is the paper's value.

    Returns:
        (id, fused score) pairs, best first; ties keep first-seen order.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])
