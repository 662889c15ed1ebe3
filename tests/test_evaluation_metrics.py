"""The ranx wiring checked against metrics computed by hand on a tiny ranking."""

from __future__ import annotations

import math

import pytest

from sitetune.evaluation.metrics import METRICS, score_rankings, to_run

# q1: ranking b, a, c, d with a graded 2 and c graded 1.
# q2: one relevant doc x at rank 2. q3: relevant y never retrieved.
JUDGMENTS = {"q1": {"a": 2, "c": 1}, "q2": {"x": 1}, "q3": {"y": 1}}
RANKINGS = {"q1": ["b", "a", "c", "d"], "q2": ["w", "x"], "q3": ["z"]}


def _log2(n: float) -> float:
    return math.log(n, 2)


def test_ndcg_uses_exponential_gain() -> None:
    means, per = score_rankings(JUDGMENTS, RANKINGS, ["ndcg@10"])
    dcg1 = (2**2 - 1) / _log2(3) + (2**1 - 1) / _log2(4)
    idcg1 = (2**2 - 1) / _log2(2) + (2**1 - 1) / _log2(3)
    q2 = 1 / _log2(3)
    assert per["ndcg@10"]["q1"] == pytest.approx(dcg1 / idcg1)
    assert per["ndcg@10"]["q2"] == pytest.approx(q2)
    assert per["ndcg@10"]["q3"] == 0.0
    assert means["ndcg@10"] == pytest.approx((dcg1 / idcg1 + q2) / 3)


def test_mrr_recall_and_map_by_hand() -> None:
    means, per = score_rankings(JUDGMENTS, RANKINGS)
    assert per["mrr@10"] == pytest.approx({"q1": 1 / 2, "q2": 1 / 2, "q3": 0.0})
    assert per["recall@1"] == pytest.approx({"q1": 0.0, "q2": 0.0, "q3": 0.0})
    assert per["recall@5"] == pytest.approx({"q1": 1.0, "q2": 1.0, "q3": 0.0})
    # AP(q1) = (1/2 + 2/3) / 2; AP(q2) = 1/2.
    assert per["map@100"]["q1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert means["map@100"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 3)
    assert set(means) == set(METRICS)


def test_cutoff_ignores_documents_below_k() -> None:
    ranking = {"q": [f"n{i}" for i in range(10)] + ["hit"]}
    means, _ = score_rankings({"q": {"hit": 1}}, ranking, ["recall@10", "recall@100", "mrr@10"])
    assert means == pytest.approx({"recall@10": 0.0, "recall@100": 1.0, "mrr@10": 0.0})


def test_query_missing_from_run_scores_zero_and_empty_ranking_is_kept() -> None:
    means, per = score_rankings({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": ["a"], "q2": []}, ["recall@10"])
    assert per["recall@10"] == pytest.approx({"q1": 1.0, "q2": 0.0})
    assert means["recall@10"] == pytest.approx(0.5)


def test_run_scores_follow_rank_not_retriever_ties() -> None:
    run = to_run({"q": ["c", "a", "b"]})
    scores = run.to_dict()["q"]
    assert sorted(scores, key=lambda d: -scores[d]) == ["c", "a", "b"]


def test_unknown_metric_and_no_judged_query_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown metrics"):
        score_rankings(JUDGMENTS, RANKINGS, ["ndcg@3"])
    with pytest.raises(ValueError, match="no query"):
        score_rankings({"q": {}}, {"q": ["a"]})
