"""Ranking metrics through ranx: small pure functions from judgments and rankings to scores.

The evaluation never computes a metric by hand; it turns judgments into a ranx ``Qrels``, rankings
into a ranx ``Run`` and asks ranx. nDCG uses the exponential gain 2^grade - 1 (ranx's
``ndcg_burges``), so a grade-2 chunk ("answers it") counts three times a grade-1 chunk ("helps").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Our metric names, in report order, mapped to ranx's names.
METRICS: dict[str, str] = {
    "ndcg@10": "ndcg_burges@10",
    "mrr@10": "mrr@10",
    # Share of queries whose first result is graded 2 ("answers it"): what a student reads first.
    "answers@1": "precision@1-l2",
    "recall@1": "recall@1",
    "recall@5": "recall@5",
    "recall@10": "recall@10",
    "recall@100": "recall@100",
    "map@100": "map@100",
}

#: The metrics ``--json`` prints.
HEADLINE_METRICS: tuple[str, ...] = ("ndcg@10", "answers@1", "mrr@10", "recall@10")

Judgments = Mapping[str, Mapping[str, int]]
Rankings = Mapping[str, Sequence[str]]


def to_qrels(judgments: Judgments) -> Any:
    """A ranx ``Qrels`` from ``{query_id: {chunk_id: grade}}``; queries without a positive grade are left out.

    Args:
        judgments: Grades per query; grades <= 0 mean "not relevant" and are dropped.

    Returns:
        ranx.Qrels.
    """
    from ranx import Qrels

    return Qrels.from_dict(positive_judgments(judgments))


def positive_judgments(judgments: Judgments) -> dict[str, dict[str, int]]:
    """``judgments`` without grades <= 0 and without queries left with no relevant document."""
    cleaned = {q: {d: int(g) for d, g in rel.items() if g > 0} for q, rel in judgments.items()}
    return {q: rel for q, rel in cleaned.items() if rel}


def to_run(rankings: Rankings) -> Any:
    """A ranx ``Run`` from ranked id lists (best first).

    Scores are derived from rank (n, n-1, ...) rather than taken from the retriever so that ties in
    the retriever's scores cannot reorder documents inside ranx: the ranking given is the one scored.
    A query with an empty ranking gets one placeholder document so ranx keeps it (it scores 0).
    """
    from ranx import Run

    data: dict[str, dict[str, float]] = {}
    for q, ranked in rankings.items():
        ids = list(dict.fromkeys(ranked)) or ["__no_result__"]
        n = len(ids)
        data[q] = {d: float(n - i) for i, d in enumerate(ids)}
    return Run.from_dict(data)


def score_rankings(
    judgments: Judgments, rankings: Rankings, metrics: Sequence[str] = tuple(METRICS)
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query metrics of ``rankings`` against ``judgments``.

    Args:
        judgments: ``{query_id: {chunk_id: grade}}``; only queries with a positive grade are scored.
        rankings: ``{query_id: [chunk_id, ...]}`` best first; a judged query missing here scores 0.
        metrics: Names from :data:`METRICS`.

    Returns:
        (means, per_query): ``{metric: mean}`` and ``{metric: {query_id: value}}``.

    Raises:
        ValueError: An unknown metric name, or no judged query at all.
    """
    from ranx import evaluate

    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    if not positive_judgments(judgments):
        raise ValueError("no query has a relevant document")
    qrels = to_qrels(judgments)
    judged = set(qrels.keys())
    run = to_run({q: r for q, r in rankings.items() if q in judged})
    ranx_names = [METRICS[m] for m in metrics]
    evaluate(qrels, run, ranx_names, make_comparable=True, threads=1)
    means = {m: float(run.mean_scores[METRICS[m]]) for m in metrics}
    per_query = {m: {q: float(v) for q, v in run.scores[METRICS[m]].items()} for m in metrics}
    return means, per_query
