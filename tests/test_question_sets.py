"""Packaged question sets hold up against their real corpus, and the checker catches a broken file."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from site_fixtures import benchmark_module, stirling_corpus  # noqa: F401
from sitetune.corpus import Corpus

STIRLING_QUESTIONS = Path(str(files("sitetune.data") / "questions" / "stirling_questions.json"))
check = benchmark_module("check_questions")


@pytest.fixture(scope="module")
def stirling(stirling_corpus: Path) -> Corpus:  # noqa: F811
    return Corpus.load(stirling_corpus)


def test_stirling_questions_every_answer_is_found_and_specific(stirling: Corpus) -> None:
    result = check.check_questions(STIRLING_QUESTIONS, stirling)
    assert result.problems == []
    assert len(result.queries) >= 40
    assert result.kinds.get("unanswerable", 0) >= 5
    assert result.kinds.get("keyword", 0) >= 10
    # "general" questions (st-57 on) were written blind to the pages and are judged by chunk_id only; the
    # checker reports any of their ids missing from the corpus (problems == [] above)
    assert result.kinds.get("general", 0) >= 25
    assert all(q.answers for q in result.queries if q.answerable and q.kind != "general")
    assert not any(q.answers for q in result.queries if q.kind == "general")
    assert all(1 <= len(m.chunks) <= check.MAX_MATCHES for q in result.queries for m in q.answers)
    assert {q.kind for q in result.queries} <= {"natural", "keyword", "paraphrase", "misspelled", "loose-name",
                                                 "unanswerable", "general"}


def test_checker_rejects_a_bad_file_naming_each_query(stirling: Corpus, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"queries": [
        {"id": "x-01", "text": "when does teaching start", "answers": ["Autumn semester Teaching starts: Monday"]},
        {"id": "x-02", "text": "tuition at the moon campus", "answers": ["our campus on the Moon charges 3 cheeses"]},
        {"id": "x-03", "text": "anything", "answers": ["the University"]},
        {"id": "x-04", "text": "can I bring a dog", "answerable": False, "answers": ["dog"]},
        {"id": "x-01", "text": "again", "answers": ["Clearing is closed for 2022"]},
    ]}))
    result = check.check_questions(bad, stirling)
    assert not result.ok
    problems = "\n".join(result.problems)
    assert "x-02: answer string 'our campus on the Moon charges 3 cheeses' matches no chunk" in problems
    assert "x-03: answer string 'the University' matches" in problems and "too generic" in problems
    assert "x-04: marked unanswerable but has answers" in problems
    assert "x-01: id appears more than once" in problems
    assert not any(line.startswith("x-01: answer") for line in result.problems)  # its answer is found
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in stirling.records))
    assert check.main([str(bad), "--corpus", str(corpus_file)]) == 1
    out = capsys.readouterr().out
    assert "x-02: answer string" in out and "problem(s)" in out
    bad.write_text('{"queries": [')
    assert check.main([str(bad), "--corpus", str(corpus_file)]) == 2
    assert "bad.json: line 1: not valid JSON" in capsys.readouterr().err


SAMPLE_QUESTIONS = Path(str(files("sitetune.data") / "questions" / "sample_questions.json"))


def test_sample_site_questions_every_answer_is_found_and_specific() -> None:
    from sitetune.api import crawl_corpus

    result = check.check_questions(SAMPLE_QUESTIONS, crawl_corpus("sample", progress=False))
    assert result.problems == []
    assert result.kinds.get("unanswerable", 0) >= 3
    assert all(q.answers for q in result.queries if q.answerable)
    assert all(1 <= len(m.chunks) <= check.MAX_MATCHES for q in result.queries for m in q.answers)


def test_the_real_sites_sets_keep_answers_as_places_not_the_sites_words() -> None:
    # The CBS and Stirling texts are not ours to ship: their answers are places in the corpus's chunks.
    for name in ("cbs_questions_v2.json", "stirling_questions.json"):
        data = json.loads((files("sitetune.data") / "questions" / name).read_text(encoding="utf-8"))
        answers = [a for q in data["queries"] for a in q.get("answers", [])]
        assert answers and all(isinstance(a, dict) and set(a) == {"chunk", "at", "chars"} for a in answers), name


def test_an_answer_given_as_a_place_is_read_from_the_corpus(stirling: Corpus, tmp_path: Path) -> None:
    from sitetune.errors import InputError
    from sitetune.evaluation.querysets import load_query_file, normalise

    chunk = stirling.chunks[0]
    words = normalise(chunk.text)[:30]
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"queries": [
        {"id": "q1", "text": "first", "answers": [{"chunk": chunk.chunk_id, "at": 0, "chars": 30}]},
        {"id": "q2", "text": "past the end", "answers": [{"chunk": chunk.chunk_id, "at": 0, "chars": 10**6}],
         "relevant": {chunk.chunk_id: 1}},
        {"id": "q3", "text": "unknown chunk", "answers": [{"chunk": "0" * 16, "at": 0, "chars": 5}],
         "relevant": {chunk.chunk_id: 1}},
    ]}))
    qs = load_query_file(path, stirling)
    q1 = next(q for q in qs.queries if q.id == "q1")
    assert q1.answers == (words,) and q1.relevant[chunk.chunk_id] == 2
    assert qs.unmatched_answers == {"q2": [f"{chunk.chunk_id}[0:1000000]"], "q3": ["0" * 16 + "[0:5]"]}
    result = check.check_questions(path, stirling)
    assert result.queries[0].answers[0].chunks[0]["chunk_id"] == chunk.chunk_id
    assert any(p.startswith("q2: answer string") and "matches no chunk" in p for p in result.problems)
    path.write_text(json.dumps({"queries": [{"id": "q4", "text": "bad", "answers": [{"chunk": "x", "at": -1}]}]}))
    with pytest.raises(InputError, match=r"q4.*chunk_id"):
        load_query_file(path, stirling)
