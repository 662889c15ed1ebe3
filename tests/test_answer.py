"""Extractive answers: sentence splitting, cited sentences from real CBS sections, "not found" off-topic.

Every answer is read from the real hybrid :class:`Searcher` over the serve tests' slice store, as the CLI
and the HTTP API read it (the threshold was calibrated on hybrid hits).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serve_helpers import SLICE_PAGES, session_store
from sitetune.answer import NOT_FOUND_TEXT, Answerer, extractive_answer, split_sentences
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
    for part, cite in zip(re.split(r" ?\[\d+\] ?", answer.text), answer.citations, strict=False):
        hit = by_id[cite.chunk_id]
        assert cite.url == hit.url and cite.section_title == hit.section_title
        for sentence in split_sentences(part):
            assert sentence in " ".join(hit.text.split())
    assert "deadline" in answer.text.lower() or "1 march" in answer.text.lower()
    assert len(split_sentences(re.sub(r"\[\d+\]", "", answer.text))) <= AnswerConfig().max_sentences


def test_sentences_of_one_source_stay_in_reading_order(answerer: Answerer) -> None:
    question = "Can I switch between the part-time and the full-time programme?"
    answer = answerer.answer(question)
    assert answer.found
    for cite in answer.citations:
        text = " ".join(next(h for h in answer.hits if h.chunk_id == cite.chunk_id).text.split())
        group = re.search(rf"(?:^|\] )([^\[]*) \[{cite.n}\]", answer.text)
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


def test_threshold_decides(searcher: Searcher, answerer: Answerer) -> None:
    question = "What is the application deadline?"
    strict = Answerer(searcher, AnswerConfig(min_score=1.5))
    assert answerer.answer(question).found
    assert not strict.answer(question).found
    assert not extractive_answer(question, [], answerer.scorer).found


def test_cli_answer_json_and_text(slice_store: Path) -> None:
    import json

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


def test_reuse_last_query_encodes_a_repeated_text_once(base_encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from sitetune.answer import ReuseLastQuery

    calls: list[int] = []

    class Counting:
        dim, info, model_path = base_encoder.dim, base_encoder.info, base_encoder.model_path

        def encode(self, texts, *, show_progress=False):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return base_encoder.encode(texts)

    encoder = ReuseLastQuery(Counting())
    first = encoder.encode(["when is the deadline"])
    again = encoder.encode(["when is the deadline"])
    other = encoder.encode(["tuition fee"])
    assert calls == [1, 1]
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_warm_encodes_every_sentence_ahead(slice_store: Path, base_encoder) -> None:  # type: ignore[no-untyped-def]
    from sitetune.answer import Answerer
    from sitetune.search import Searcher

    with Searcher.open(slice_store, encoder=base_encoder) as searcher:
        chunks = searcher.reader.chunks
        answerer = Answerer(searcher)
        count = answerer.warm(chunks)
        assert count == sum(len(split_sentences(c.text)) for c in chunks) > 0
        cached = len(answerer.scorer.cache)
        assert cached == len({s for c in chunks for s in split_sentences(c.text)})
        assert answerer.answer("When is the application deadline?").found
        assert len(answerer.scorer.cache) == cached  # nothing new had to be encoded
