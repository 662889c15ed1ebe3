"""The empty page's example questions (``GET /site``), drawn from a store's section titles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sitetune.corpus import Chunk, Occurrence
from sitetune.records import chunk_id_of
from sitetune.serve.siteintro import example_questions, site_info, topic_question


def _chunk(text: str, *places: tuple[str, str]) -> Chunk:
    occurrences = tuple(Occurrence(page, title, title, f"https://example.org/{page}") for page, title in places)
    return Chunk(chunk_id_of(text), text, occurrences)


TEXT = (
    "Check the entry requirements and the application deadlines. Your English test must be recent. "
    "Join the info meetings. The documents you upload are checked. English English entry."
)
COUNTS = Counter(TEXT.replace(".", " ").split())
STARTS = frozenset({"entry", "application", "english", "info", "documents"})


def test_a_plural_topic_becomes_a_question_in_the_texts_case() -> None:
    assert topic_question("Entry requirements", COUNTS, STARTS) == "What are the entry requirements?"
    assert topic_question("ENTRY REQUIREMENTS", COUNTS, STARTS) == "What are the entry requirements?"
    # A word the text capitalises keeps its capital.
    assert topic_question("English language requirements", COUNTS, STARTS) == (
        "What are the English language requirements?"
    )


def test_titles_that_are_not_plural_topics_stay_out() -> None:
    starts = STARTS | {"meet", "key", "selection", "business", "very"}
    for title in (
        "Documents to upload",  # a clause
        "Meet the students",  # a function word
        "Selection criterion",  # not a plural
        "Business analytics",  # "-ics" names a subject
        "Key dates in 2026",  # a number
        "Very long title of many requirements",  # too long for a topic
    ):
        assert topic_question(title, COUNTS, starts) is None, title
    # Its first word is never used after an article in the text: a verb, not a topic.
    assert topic_question("Join info meetings", COUNTS, STARTS) is None


def test_examples_prefer_shared_topics_then_question_titles_and_differ_in_topic() -> None:
    pages = [f"Programme {i}" for i in range(4)]
    chunks = [
        _chunk(TEXT + f" {page}", *[(page, t) for t in ("Entry requirements", "English language requirements")])
        for page in pages
    ]
    chunks += [_chunk(f"Deadlines of {page}.", (page, "Application deadlines (Part 1)")) for page in pages]
    chunks.append(_chunk("Yes, up to three.", ("FAQ", "How many programmes can I apply for?")))
    chunks.append(_chunk("Meet us.", ("Events", "Meet the students")))
    assert example_questions(chunks) == [
        "What are the entry requirements?",  # "English language requirements" is about the same thing
        "What are the application deadlines?",
        "How many programmes can I apply for?",
    ]
    assert example_questions(chunks, count=1) == ["What are the entry requirements?"]


def test_without_topics_or_questions_the_shared_titles_are_offered_as_topics() -> None:
    chunks = [_chunk(f"Meet us on {p}.", (p, "Meet the students"), (p, "Come to open days")) for p in ("a", "b")]
    assert example_questions(chunks) == ["Meet the students", "Come to open days"]
    assert example_questions([]) == []


def test_site_info_of_a_searcher_without_a_store_is_empty() -> None:
    info = site_info(object())
    assert info.name == "" and info.examples == []


def test_site_endpoint_names_the_stores_site_and_its_examples(cbs_csv: Path, tmp_path_factory, base_encoder) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from serve_helpers import session_store
    from sitetune.search import Searcher
    from sitetune.serve import create_app

    with Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as searcher:
        body = TestClient(create_app(searcher)).get("/site").json()
        assert body["name"] == searcher.vocabulary.name == "CBS"
        assert body == site_info(searcher).model_dump()
        assert len(body["examples"]) == 3, body
