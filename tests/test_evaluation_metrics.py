"""The metrics checked against values computed by hand on a tiny ranking, and against ranx on random ones."""

from __future__ import annotations

import math
import random

import pytest

from sitetune.evaluation.metrics import METRICS, score_rankings

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


def test_the_ranking_is_scored_as_given_and_a_repeated_id_counts_once() -> None:
    _, per = score_rankings({"q": {"a": 1, "b": 1}}, {"q": ["c", "a", "a", "b"]}, ["mrr@10", "recall@1", "map@100"])
    assert per["mrr@10"]["q"] == pytest.approx(1 / 2)
    assert per["recall@1"]["q"] == 0.0
    # a at rank 2, b at rank 3 (the repeated a is not a rank of its own): AP = (1/2 + 2/3) / 2.
    assert per["map@100"]["q"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_every_metric_agrees_with_ranx_on_random_rankings() -> None:
    from ranx import Qrels, Run, evaluate

    ranx_names = {"ndcg@10": "ndcg_burges@10", "mrr@10": "mrr@10", "answers@1": "precision@1-l2",
                  "recall@1": "recall@1", "recall@5": "recall@5", "recall@10": "recall@10",
                  "recall@100": "recall@100", "map@100": "map@100"}
    assert set(ranx_names) == set(METRICS)
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(150)]
    judgments: dict[str, dict[str, int]] = {}
    rankings: dict[str, list[str]] = {}
    for n in range(60):
        q = f"q{n}"
        judgments[q] = {d: rng.choice([-1, 0, 1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 12))}
        if n % 10 == 0:
            continue  # a judged query the run left out
        # Up to 130 ids (past every cut-off), with repeats; some rankings are empty.
        rankings[q] = [rng.choice(docs) for _ in range(rng.choice([0, 1, 3, 10, 40, 130]))]
    rankings["unjudged"] = ["d1"]
    means, per = score_rankings(judgments, rankings)

    positive = {q: {d: g for d, g in rel.items() if g > 0} for q, rel in judgments.items()}
    qrels = Qrels.from_dict({q: rel for q, rel in positive.items() if rel})
    run_dict = {}
    for q, ranked in rankings.items():
        ids = list(dict.fromkeys(ranked)) or ["__no_result__"]
        run_dict[q] = {d: float(len(ids) - i) for i, d in enumerate(ids)}
    run = Run.from_dict(run_dict)
    evaluate(qrels, run, list(ranx_names.values()), make_comparable=True, threads=1)
    assert set(per["ndcg@10"]) == set(qrels.keys())
    for ours, theirs in ranx_names.items():
        assert means[ours] == pytest.approx(float(run.mean_scores[theirs]), abs=1e-12), ours
        assert per[ours] == pytest.approx({q: float(v) for q, v in run.scores[theirs].items()}, abs=1e-12), ours


def test_unknown_metric_and_no_judged_query_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown metrics"):
        score_rankings(JUDGMENTS, RANKINGS, ["ndcg@3"])
    with pytest.raises(ValueError, match="no query"):
        score_rankings({"q": {}}, {"q": ["a"]})
