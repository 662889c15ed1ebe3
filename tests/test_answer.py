"""Extractive answers: sentence splitting, cited pieces of real CBS sections, "not found" off-topic.

Every answer is read from the real hybrid :class:`Searcher` over the serve tests' slice store, as the CLI
and the HTTP API read it (the threshold was calibrated on hybrid hits).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serve_helpers import SLICE_PAGES, session_store
from sitetune.answer import (
    NOT_FOUND_TEXT,
    Answerer,
    SentenceScorer,
    extractive_answer,
    split_sentences,
    split_units,
)
from sitetune.config import AnswerConfig
from sitetune.search import Searcher

OFF_TOPIC = [
    "What is the capital of Peru?",
    "How do I bake sourdough bread?",
    "Who won the football world cup in 1998?",
    "What is the boiling point of water on Mount Everest?",
]


def test_split_sentences_keeps_abbreviations_decimals_and_glued_sentences() -> None:
    text = (
        "The fee is approx. 7.5 EUR per semester, e.g. for EU students. Prof. J. Smith teaches it! "
        "Apply before the round.We assess all bachelor degrees. Is it online? Yes."
    )
    assert split_sentences(text) == [
        "The fee is approx. 7.5 EUR per semester, e.g. for EU students.",
        "Prof. J. Smith teaches it!",
        "Apply before the round.",
        "We assess all bachelor degrees.",
        "Is it online?",
        "Yes.",
    ]
    assert split_sentences("   ") == []


def test_split_sentences_cuts_run_on_lists_at_semicolons() -> None:
    item = "a programme taught in English with many electives"
    text = "; ".join([item] * 20)
    pieces = split_sentences(text)
    assert len(pieces) > 1
    assert all(len(p) <= 400 for p in pieces)
    assert " ".join(pieces) == text


@pytest.fixture(scope="module")
def slice_store(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_store(cbs_csv, tmp_path_factory)


@pytest.fixture(scope="module")
def searcher(slice_store: Path, base_encoder) -> Iterator[Searcher]:  # type: ignore[no-untyped-def]
    """The real hybrid search over the slice store (the retrieval the answer reads)."""
    with Searcher.open(slice_store, encoder=base_encoder) as opened:
        assert {p for p in opened.pages if p in SLICE_PAGES} == set(SLICE_PAGES)
        yield opened


@pytest.fixture(scope="module")
def answerer(searcher: Searcher) -> Answerer:
    return Answerer(searcher, AnswerConfig())


def test_answer_is_made_of_cited_sentences_from_the_hits(answerer: Answerer) -> None:
    answer = answerer.answer("What is the application deadline for the graduate programmes?")
    hits = answer.hits
    assert answer.found
    assert answer.score >= AnswerConfig().min_score
    assert answer.citations and [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    by_id = {h.chunk_id: h for h in hits}
    # Every [n] is a citation, every citation points at a hit, every sentence is copied from its hit.
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
    assert sorted(set(markers)) == [c.n for c in answer.citations]
    # Each cited group of blocks is copied from its hit, line by line.
    cited = [b.n for b in answer.blocks if b.n is not None]
    assert cited == [c.n for c in answer.citations]
    group: list[str] = []
    for block in answer.blocks:
        group += block.lines
        if block.n is None:
            continue
        cite = answer.citations[block.n - 1]
        hit = by_id[cite.chunk_id]
        assert cite.url == hit.url and cite.section_title == hit.section_title
        for line in group:
            for sentence in split_sentences(line):
                assert sentence in " ".join(hit.text.split())
        group = []
    assert "deadline" in answer.text.lower() or "1 march" in answer.text.lower()


def test_sentences_of_one_source_stay_in_reading_order(answerer: Answerer) -> None:
    question = "Can I switch between the part-time and the full-time programme?"
    answer = answerer.answer(question)
    assert answer.found
    for cite in answer.citations:
        text = " ".join(next(h for h in answer.hits if h.chunk_id == cite.chunk_id).text.split())
        group = re.search(rf"(?:^|\]\s)([^\[]*) \[{cite.n}\]", answer.text)
        assert group is not None
        positions = [text.index(s) for s in split_sentences(group.group(1))]
        assert positions == sorted(positions)


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_are_not_answered(answerer: Answerer, searcher: Searcher, question: str) -> None:
    hits = searcher.search(question, k=AnswerConfig().sections)
    answer = answerer.answer(question)
    assert not answer.found
    assert answer.text == NOT_FOUND_TEXT
    assert answer.citations == []
    assert answer.hits == hits  # still shown as the closest sections
    assert answer.score < AnswerConfig().min_score


THRESHOLD_QUESTION = "What is the application deadline?"


def test_threshold_decides_at_the_best_score(searcher: Searcher, answerer: Answerer) -> None:
    """Found at ``min_score`` equal to the best sentence score, not found at the next float above it."""
    best = answerer.answer(THRESHOLD_QUESTION).score
    assert best >= AnswerConfig().min_score
    for min_score, found in ((best, True), (math.nextafter(best, math.inf), False)):
        answer = Answerer(searcher, replace(AnswerConfig(), min_score=min_score)).answer(THRESHOLD_QUESTION)
        assert (answer.found, answer.score) == (found, best), min_score
        assert bool(answer.citations) is found
    assert not extractive_answer(THRESHOLD_QUESTION, [], answerer.scorer).found


def test_overlap_term_adds_its_weight_times_the_shared_content_words(searcher: Searcher, base_encoder: Any) -> None:
    from sitetune.search.sentence_stage import SentenceView

    plain = SentenceScorer(base_encoder, AnswerConfig())
    sentences = ["The application deadline is 1 March.", "Applications close soon.", "Tuition is free."]
    # Content words of the question (stop words dropped, stemmed): "application", "deadline".
    assert plain.lexical_overlap(THRESHOLD_QUESTION, sentences).tolist() == [1.0, 0.5, 0.0]
    views = [SentenceView("Page", "Section", s) for s in sentences]
    weighted = SentenceScorer(base_encoder, replace(AnswerConfig(), lexical_weight=0.25))
    without = SentenceScorer(base_encoder, replace(AnswerConfig(), lexical_weight=0.0))
    gained = weighted.score(THRESHOLD_QUESTION, views) - without.score(THRESHOLD_QUESTION, views)
    assert gained.tolist() == pytest.approx([0.25, 0.125, 0.0], abs=1e-6)
    # The term decides: a threshold between the scores without and with it is passed only with it.
    best_without = Answerer(searcher, replace(AnswerConfig(), lexical_weight=0.0)).answer(THRESHOLD_QUESTION)
    best_with = Answerer(searcher, AnswerConfig()).answer(THRESHOLD_QUESTION)
    assert best_with.score > best_without.score
    middle = (best_with.score + best_without.score) / 2
    assert Answerer(searcher, replace(AnswerConfig(), min_score=middle)).answer(THRESHOLD_QUESTION).found
    assert not Answerer(
        searcher, replace(AnswerConfig(), min_score=middle, lexical_weight=0.0)
    ).answer(THRESHOLD_QUESTION).found


def test_margin_keeps_exactly_the_units_within_it_of_the_best(searcher: Searcher, answerer: Answerer) -> None:
    question = "How do I apply for a graduate programme?"
    hits = answerer.answer(question).hits[: AnswerConfig().sections]
    pairs = [pair for h in hits for pair in answerer.scorer.unit_views(h)]
    scores = answerer.scorer.score(question, [view for _, view in pairs])
    ranked: dict[str, float] = {}
    for j in scores.argsort()[::-1]:
        ranked.setdefault(pairs[j][0].text, float(scores[j]))
    best, second, third = list(ranked.values())[:3]
    assert best > second > third >= AnswerConfig().min_score, (best, second, third)
    top_two = set(list(ranked)[:2])
    for margin, expected in ((0.0, 1), ((best - second + best - third) / 2, 2), (10.0, 4)):
        # One margin for every section and no bonus: exactly the units within ``margin`` of the best.
        config = replace(AnswerConfig(), margin=margin, second_margin=margin, top_hit_bonus=0.0, max_sentences=4)
        answer = Answerer(searcher, config).answer(question)
        chosen = [line for block in answer.blocks for line in block.lines]
        assert len(chosen) == expected, (margin, chosen)
        assert set(chosen) <= set(ranked)
        if expected == 2:
            assert set(chosen) == top_two


def test_cli_answer_json_and_text(slice_store: Path) -> None:
    from sitetune.cli.main import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["answer", "How do I apply for a graduate programme?", "--store", str(slice_store), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["found"] is True and data["citations"]
    assert all(c["url"].startswith("https://") for c in data["citations"])

    result = runner.invoke(app, ["answer", "What is the capital of Peru?", "--store", str(slice_store)])
    assert result.exit_code == 0, result.output
    assert NOT_FOUND_TEXT in result.stdout and "Closest sections:" in result.stdout


def test_cli_min_score_sets_the_threshold(slice_store: Path) -> None:
    from sitetune.cli.main import app

    def ask(*extra: str) -> dict[str, object]:
        args = ["answer", THRESHOLD_QUESTION, "--store", str(slice_store), "--json", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    default = ask()
    best = default["score"]
    assert default["found"] is True and isinstance(best, float)
    assert ask("--min-score", repr(best))["found"] is True
    above = ask("--min-score", repr(math.nextafter(best, math.inf)))
    assert above["found"] is False and above["text"] == NOT_FOUND_TEXT and above["score"] == best


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "the question is empty"),
        (["x" * 1001], "limit is 1000"),
        (["deadline?", "--llm-url", "http://127.0.0.1:9"], "both --llm-url and --llm-model"),
        (["deadline?", "--llm-url", "ftp://x", "--llm-model", "m"], "http(s) URL"),
        (["deadline?", "--page", "No such page"], "unknown page"),
    ],
)
def test_cli_answer_bad_input_fails_clearly(slice_store: Path, args: list[str], message: str) -> None:
    from sitetune.cli.main import app

    result = CliRunner().invoke(app, ["answer", *args, "--store", str(slice_store)])
    assert result.exit_code == 2
    assert message in result.output


def test_warm_encodes_every_sentence_ahead(slice_store: Path, base_encoder) -> None:  # type: ignore[no-untyped-def]
    from sitetune.answer import Answerer
    from sitetune.search import Searcher

    with Searcher.open(slice_store, encoder=base_encoder) as searcher:
        chunks = searcher.reader.chunks
        answerer = Answerer(searcher)
        count = answerer.warm(chunks)
        assert count == sum(len(split_units(c.text)) for c in chunks) > 0
        cached = len(answerer.scorer.cache)
        assert cached == len({u.scored for c in chunks for u in split_units(c.text)})
        assert answerer.answer("When is the application deadline?").found
        assert len(answerer.scorer.cache) == cached  # nothing new had to be encoded
