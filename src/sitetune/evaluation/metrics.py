"""Ranking metrics: small pure functions from judgments and rankings to scores.

The definitions are the standard trec_eval/ranx ones, and a test checks them against ranx on random
rankings; they are computed here in plain Python because ranx compiles its numba kernels in every new
process (even from its disk cache), which cost every ``sitetune evaluate`` far more than scoring a few
hundred queries does. nDCG uses the exponential gain 2^grade - 1 (ranx's
``ndcg_burges``), so a grade-2 chunk ("answers it") counts three times a grade-1 chunk ("helps").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

#: Our metric names, in report order, each with its definition (grade >= 1 is "relevant").
METRICS: dict[str, str] = {
    "ndcg@10": "DCG of the top 10 with gain 2^grade - 1 and discount log2(rank + 1), over the ideal DCG@10",
    "mrr@10": "1 / rank of the first relevant chunk in the top 10 (0 if none)",
    # Share of queries whose first result is graded 2 ("answers it"): what a student reads first.
    "answers@1": "1 if the first result is graded 2, else 0 (ranx's precision@1-l2)",
    "recall@1": "relevant chunks in the top 1 / relevant chunks",
    "recall@5": "relevant chunks in the top 5 / relevant chunks",
    "recall@10": "relevant chunks in the top 10 / relevant chunks",
    "recall@100": "relevant chunks in the top 100 / relevant chunks",
    "map@100": "sum of precision@rank at each relevant chunk in the top 100 / relevant chunks",
}

#: The metrics ``--json`` prints.
HEADLINE_METRICS: tuple[str, ...] = ("ndcg@10", "answers@1", "mrr@10", "recall@10")

Judgments = Mapping[str, Mapping[str, int]]
Rankings = Mapping[str, Sequence[str]]


def positive_judgments(judgments: Judgments) -> dict[str, dict[str, int]]:
    """``judgments`` without grades <= 0 and without queries left with no relevant document."""
    cleaned = {q: {d: int(g) for d, g in rel.items() if g > 0} for q, rel in judgments.items()}
    return {q: rel for q, rel in cleaned.items() if rel}


def _ndcg(rel: Mapping[str, int], ranked: Sequence[str], k: int) -> float:
    dcg = sum((2.0 ** rel.get(d, 0) - 1.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2.0**g - 1.0) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


def _mrr(rel: Mapping[str, int], ranked: Sequence[str], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if d in rel), 0.0)


def _answers(rel: Mapping[str, int], ranked: Sequence[str], k: int) -> float:
    # Precision at k counting grade-2 chunks only; divided by k even when fewer than k were ranked.
    return sum(1 for d in ranked[:k] if rel.get(d, 0) >= 2) / k


def _recall(rel: Mapping[str, int], ranked: Sequence[str], k: int) -> float:
    return sum(1 for d in ranked[:k] if d in rel) / len(rel)


def _map(rel: Mapping[str, int], ranked: Sequence[str], k: int) -> float:
    hits, total = 0, 0.0
    for i, d in enumerate(ranked[:k]):
        if d in rel:
            hits += 1
            total += hits / (i + 1)
    return total / len(rel)


_FUNCTIONS: dict[str, Callable[[Mapping[str, int], Sequence[str], int], float]] = {
    "ndcg": _ndcg, "mrr": _mrr, "answers": _answers, "recall": _recall, "map": _map,
}


def score_rankings(
    judgments: Judgments, rankings: Rankings, metrics: Sequence[str] = tuple(METRICS)
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query metrics of ``rankings`` against ``judgments``.

    A ranking is scored as given (best first); an id repeated in it counts at its first rank only.

    Args:
        judgments: ``{query_id: {chunk_id: grade}}``; only queries with a positive grade are scored.
        rankings: ``{query_id: [chunk_id, ...]}`` best first; a judged query missing here scores 0.
        metrics: Names from :data:`METRICS`.

    Returns:
        (means, per_query): ``{metric: mean}`` and ``{metric: {query_id: value}}``.

    Raises:
        ValueError: An unknown metric name, or no judged query at all.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    judged = positive_judgments(judgments)
    if not judged:
        raise ValueError("no query has a relevant document")
    # Queries in id order, as ranx reported them (the per-query tables keep their order).
    queries = sorted(judged)
    ranked = {q: list(dict.fromkeys(rankings.get(q, ()))) for q in queries}
    per_query: dict[str, dict[str, float]] = {}
    for m in metrics:
        name, k = m.split("@")
        fn = _FUNCTIONS[name]
        per_query[m] = {q: float(fn(judged[q], ranked[q], int(k))) for q in queries}
    means = {m: math.fsum(per_query[m].values()) / len(queries) for m in metrics}
    return means, per_query
