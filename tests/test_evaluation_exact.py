"""``sitetune evaluate`` end to end on a tiny corpus whose answers are known: exact metrics, not ranges."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from sitetune.answer import Answer, Citation
from sitetune.corpus import Corpus
from sitetune.evaluation.querysets import Query, load_query_file
from sitetune.evaluation.served import judge_answer
from sitetune.recordio import write_records
from sitetune.records import SectionRecord
from sitetune.search import SearchHit

# Each section holds one word no other section has, so BM25's ranking of a one-word query is known.
SECTIONS = [
    ("Admissions", "Deadlines", "Applications close on the first of March. Late zebra forms are not read."),
    ("Admissions", "Language tests", "An overall IELTS score of 6.5 is needed. The walrus test is not accepted."),
    ("Fees", "Tuition", "Tuition is 9,000 a year for students from outside Europe. Pay by quokka transfer."),
    ("Fees", "Scholarships", "Merit scholarships cover half the fee. Apply with a pangolin essay."),
    ("Housing", "Halls", "Rooms in halls cost 150 a week. Each flat has an ocelot kitchen."),
    ("Housing", "Private renting", "Most students rent privately after year one. Ask the axolotl office."),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Corpus]:
    d = tmp_path_factory.mktemp("tiny")
    records = [SectionRecord(page, title, title, text, f"https://uni.example/{page.lower()}")
               for page, title, text in SECTIONS]
    path = d / "tiny.jsonl"
    write_records(records, path)
    return path, Corpus.load(path)


@pytest.fixture(scope="module")
def evaluated(tiny: tuple[Path, Corpus], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from sitetune.evaluation import evaluate

    path, _ = tiny
    d = tmp_path_factory.mktemp("tiny-eval")
    queries = d / "tiny_q.json"
    queries.write_text(json.dumps({"queries": [
        # The rare word is in the answering section only: BM25 ranks it first.
        {"id": "zebra", "text": "zebra", "answers": ["Applications close on the first of March"]},
        # The rare word is in a helping section; the answer is elsewhere, so BM25's first result helps only.
        {"id": "walrus", "text": "walrus", "relevant": {}, "answers": ["Tuition is 9,000 a year"]},
        {"id": "never", "text": "a question the site does not answer", "answerable": False},
    ]}), encoding="utf-8")
    result = evaluate(path, ["base"], [str(queries)], None, d / "report", same_page_n=4, progress=False)
    return result, d / "report"


def test_bm25_row_has_the_exact_metrics_of_its_known_ranking(evaluated) -> None:  # type: ignore[no-untyped-def]
    result, _ = evaluated
    bm25 = result.metrics["bm25"]["tiny_q"]
    # zebra: the answering chunk first (answers@1 1, nDCG 1, MRR 1). walrus: BM25 finds only the language
    # section (rank 1, not relevant); the tuition chunk has none of the query's words, so it is not ranked.
    assert bm25["answers@1"] == pytest.approx(0.5)
    assert bm25["ndcg@10"] == pytest.approx(0.5)
    assert bm25["mrr@10"] == pytest.approx(0.5)
    assert bm25["recall@10"] == pytest.approx(0.5)
    assert result.query_sets["tiny_q"]["queries"] == 2 and result.query_sets["tiny_q"]["unanswerable"] == 1


def test_served_and_dense_rows_score_what_their_rankings_say(evaluated, tiny) -> None:  # type: ignore[no-untyped-def]
    from sitetune.evaluation.metrics import score_rankings
    from sitetune.evaluation.served import system_rankings
    from sitetune.search import Searcher

    result, report = evaluated
    _, corpus = tiny
    qs = load_query_file(report.parent / "tiny_q.json", corpus)
    with Searcher.open(report / "stores" / "base") as searcher:
        ranked = system_rankings(searcher, qs.queries)
    for label, rankings in (("base", ranked.dense), ("base+search", ranked.served)):
        # Every chunk is ranked (dense reaches them all), once, and the metrics are those of the rankings.
        assert all(sorted(r) == sorted(c.chunk_id for c in corpus.chunks) for r in rankings.values())
        means, _ = score_rankings(qs.judgments(), rankings)
        assert result.metrics[label]["tiny_q"] == pytest.approx(means)
        first = [qs.queries[i].relevant.get(rankings[q.id][0], 0) == 2 for i, q in enumerate(qs.queries)]
        assert result.metrics[label]["tiny_q"]["answers@1"] == pytest.approx(sum(first) / 2)
    # The fused row is not a copy of a single system's: it equals neither when those two disagree.
    if ranked.dense["walrus"][:2] != ranked.bm25["walrus"][:2]:
        assert ranked.served != ranked.dense or ranked.served != ranked.bm25


def test_excluded_chunks_never_appear_in_any_ranking(evaluated, tiny) -> None:  # type: ignore[no-untyped-def]
    from sitetune.evaluation.served import system_rankings
    from sitetune.search import Searcher

    _, report = evaluated
    _, corpus = tiny
    own = corpus.chunks[0]
    query = Query("self", own.text, {corpus.chunks[1].chunk_id: 1}, exclude=frozenset({own.chunk_id}))
    with Searcher.open(report / "stores" / "base") as searcher:
        ranked = system_rankings(searcher, [query])
        unexcluded = system_rankings(searcher, [Query("self", own.text, query.relevant)])
    assert unexcluded.served["self"][0] == own.chunk_id == unexcluded.dense["self"][0]
    for rankings in (ranked.dense, ranked.bm25, ranked.served):
        assert own.chunk_id not in rankings["self"]
    # With the exclusion every other chunk is still ranked.
    assert len(ranked.dense["self"]) == len(corpus.chunks) - 1 == len(ranked.served["self"])


def test_answer_metrics_are_shares_of_the_judged_questions(evaluated) -> None:  # type: ignore[no-untyped-def]
    result, report = evaluated
    m = result.answers["base+search"]["tiny_q"]
    assert (m["answerable"], m["unanswerable"]) == (2, 1)
    assert m["answered_correctly"] in (0.0, 0.5, 1.0) and m["wrongly_not_found"] in (0.0, 0.5, 1.0)
    assert m["unanswerable_not_found"] in (0.0, 1.0)
    saved = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert saved["answers"]["base+search"]["tiny_q"]["answerable"] == 2
    assert not math.isnan(saved["metrics"]["base+search"]["tiny_q"]["ndcg@10"])


def _hit(chunk_id: str) -> SearchHit:
    return SearchHit(chunk_id, f"text of {chunk_id}", 1.0, "Page", chunk_id, f"https://uni.example/{chunk_id}")


def test_judge_answer_tells_the_first_citation_from_search_s_first_result() -> None:
    """An answer that cites a lower hit first is judged on that citation; search's first hit is judged apart."""
    query = Query("q1", "how much are rooms in halls?", {"halls": 2, "renting": 1},
                  answers=("150 a week",))
    hits = [_hit("halls"), _hit("renting"), _hit("tuition")]
    cites_second = Answer("Most students rent privately. [1]", [Citation.of(1, hits[1])], True, hits, 0.6)
    judged = judge_answer(query, cites_second)
    assert judged.search_first and not judged.first_cited and not judged.correct and not judged.stray
    cites_first = Answer("Rooms in halls cost 150 a week. [1]\nAsk the office. [2]",
                         [Citation.of(1, hits[0]), Citation.of(2, hits[2])], True, hits, 0.7)
    judged = judge_answer(query, cites_first)
    assert judged.search_first and judged.first_cited and judged.correct and judged.stray
    assert judged.words == 10  # the [n] markers are not words
    not_found = Answer("Not found", [], False, hits[::-1], 0.2)
    judged = judge_answer(query, not_found)
    assert not (judged.search_first or judged.first_cited or judged.correct) and judged.words == 0
    unanswerable = judge_answer(replace(query, answerable=False), cites_first)
    assert not (unanswerable.search_first or unanswerable.first_cited or unanswerable.correct)
