"""Section signals on a hand-made site: signposts, testimonials, one programme's sections and references to other pages.

The site has general pages, each opening with a signpost that restates its topic and a section holding the
facts, a student's story about the same housing the housing page prices, and four programme pages built on one
section template. The signals are computed at index time and
read from the store; the ranking tests fail when the signals are switched off.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sitetune.answer import Answerer
from sitetune.atomic import sha256_file
from sitetune.config import SearchConfig
from sitetune.corpus import Corpus
from sitetune.index import build_index, open_store
from sitetune.index.store import SIGNALS_FILE
from sitetune.records import SectionRecord
from sitetune.search import Searcher
from sitetune.sectionkind import (
    OutdatedSignals,
    SectionSignals,
    first_person_share,
    page_references,
    section_signals,
)

BASE = "https://www.example.edu/"
PROGRAMMES = ("MSc in Marine Biology", "MSc in Urban Planning", "MSc in Data Journalism", "MSc in Public Health")


def _general() -> list[SectionRecord]:
    pages = {
        "Application deadlines": [
            ("Application deadlines", "On this page you can find the application deadlines and other important "
             "deadlines to remember when you apply for a master's programme."),
            ("Application dates for 2027", "The application portal opens on 1 February 2027. Submit by "
             "1 March 2027 at 12:00 noon CET; later applications are not assessed."),
        ],
        "Tuition fees": [
            ("Tuition fees", "Read about tuition fees and how to pay them."),
            ("Fees for non-EU applicants", "Applicants from outside the EU pay a tuition fee of 6,000 to "
             "9,000 EUR each term, set by each programme. The first instalment is due on 1 August."),
        ],
        "English level A": [
            ("English level A", "Find out how to document English at level A."),
            ("Accepted test scores", "- IELTS Academic: overall 7.0\n- TOEFL iBT: 94, with at least 20 in "
             "each part\n- Cambridge C1 Advanced: 185"),
        ],
        "Housing": [
            ("Housing", "Everything you need to know about housing, in one place."),
            ("Rooms in halls", "A single room in the Nordhavn hall costs 4,200 DKK a month; apply through "
             "the Housing Office by 1 June."),
        ],
        "Student stories": [
            ("Living in Nordhavn", "How much does a room in the Nordhavn hall cost each month? That was my "
             "biggest worry when I applied. I lived there for two years, and I made my best friends in the "
             "shared kitchen."),
        ],
        "Scholarships": [
            ("Scholarships", "Learn more about our scholarships here."),
            ("Merit scholarships", "Ten merit scholarships of 5,000 EUR each go to applicants with a GPA of "
             "at least 3.5 on a 4-point scale."),
        ],
    }
    return [SectionRecord(page, title, "", text, f"{BASE}{page.lower().replace(' ', '-')}")
            for page, sections in pages.items() for title, text in sections]


def _programme(name: str, topic: str) -> list[SectionRecord]:
    url = f"{BASE}{name.lower().replace(' ', '-')}"
    return [SectionRecord(name, title, "", text, url) for title, text in (
        ("Programme overview", f"{name} teaches {topic} through projects with partners in industry."),
        ("Entry requirements", f"A bachelor's degree with 30 ECTS in {topic}. The programme requires English "
                               f"level A."),
        ("Tuition fees", f"The tuition fee per semester for applicants from outside the EU is 7,500 EUR for "
                         f"{name}."),
        ("Career", f"Graduates of {name} work as analysts and consultants in {topic}."),
        ("Structure", f"Four semesters: three of courses in {topic} and one for the thesis."),
    )]


def site_records() -> list[SectionRecord]:
    topics = ("marine biology", "urban planning", "data journalism", "public health")
    return _general() + [r for name, topic in zip(PROGRAMMES, topics, strict=True) for r in _programme(name, topic)]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_records(site_records())


@pytest.fixture(scope="module")
def store(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kinds") / "store"
    build_index(corpus, "base", path, progress=False)
    return path


@pytest.fixture(scope="module")
def searcher(store: Path, base_encoder: object) -> Iterator[Searcher]:
    with Searcher.open(store, encoder=base_encoder) as s:  # type: ignore[arg-type]
        yield s


def _row(corpus: Corpus, page: str, title: str) -> int:
    return next(i for i, c in enumerate(corpus.chunks) if any(
        o.page_name == page and o.section_title == title for o in c.occurrences))


def test_signposts_and_answers_of_the_same_topic_are_told_apart(corpus: Corpus) -> None:
    signals = section_signals(corpus.chunks)
    for page, intro, facts in [
        ("Application deadlines", "Application deadlines", "Application dates for 2027"),
        ("Tuition fees", "Tuition fees", "Fees for non-EU applicants"),
        ("English level A", "English level A", "Accepted test scores"),
        ("Scholarships", "Scholarships", "Merit scholarships"),
    ]:
        assert signals.signpost[_row(corpus, page, intro)] > 0.5, page
        assert signals.signpost[_row(corpus, page, facts)] < 0.5, page


def test_a_students_own_story_is_a_testimonial_and_an_faq_or_a_fact_is_not(corpus: Corpus) -> None:
    signals = section_signals(corpus.chunks)
    assert signals.testimonial[_row(corpus, "Student stories", "Living in Nordhavn")]
    assert not any(signals.testimonial[_row(corpus, "Housing", t)] for t in ("Housing", "Rooms in halls"))
    # Questions are not counted: an FAQ asks in the first person and answers in the second.
    assert first_person_share("Can I bring my family? Can I apply late? You can apply until 1 June.") == 0.0
    assert first_person_share("I chose the programme for its projects, and my thesis was with a partner.") > 0.1
    # A lower-case "i" is another language's word ("in"), not the speaker.
    assert first_person_share("Cand.merc. i finansiering og regnskab") == 0.0


def test_programme_pages_are_specific_and_general_pages_are_not(corpus: Corpus) -> None:
    signals = section_signals(corpus.chunks)
    assert signals.specific[_row(corpus, PROGRAMMES[0], "Tuition fees")]
    assert not signals.specific[_row(corpus, "Tuition fees", "Fees for non-EU applicants")]


def test_a_section_naming_another_page_refers_to_it(corpus: Corpus) -> None:
    refers = page_references(corpus.chunks)
    assert "English level A" in refers[_row(corpus, PROGRAMMES[1], "Entry requirements")]
    assert refers[_row(corpus, "Housing", "Rooms in halls")] == ()


def test_the_store_keeps_the_signals_it_computed_at_index_time(store: Path, corpus: Corpus) -> None:
    (generation,) = store.glob("gen-*")
    manifest = json.loads((generation / "manifest.json").read_text())
    assert SIGNALS_FILE in manifest["files"]
    stored = SectionSignals.from_json((generation / SIGNALS_FILE).read_text(), len(corpus.chunks))
    assert stored.specific == section_signals(corpus.chunks).specific
    with pytest.raises(ValueError, match="chunks"):
        SectionSignals.from_json((generation / SIGNALS_FILE).read_text(), len(corpus.chunks) + 1)


def test_a_store_written_before_testimonials_gets_them_when_opened(
    store: Path, corpus: Corpus, tmp_path: Path
) -> None:
    old = tmp_path / "store"
    shutil.copytree(store, old)
    (generation,) = old.glob("gen-*")
    data = json.loads((generation / SIGNALS_FILE).read_text())
    del data["testimonial"]
    data["version"] = 1
    (generation / SIGNALS_FILE).write_text(json.dumps(data))
    manifest = json.loads((generation / "manifest.json").read_text())
    manifest["files"][SIGNALS_FILE] = sha256_file(generation / SIGNALS_FILE)
    (generation / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OutdatedSignals):
        SectionSignals.from_json((generation / SIGNALS_FILE).read_text(), len(corpus.chunks))
    reader = open_store(old)
    try:
        signals = reader.generation.signals
        assert signals is not None
        assert signals.testimonial[_row(corpus, "Student stories", "Living in Nordhavn")]
    finally:
        reader.close()


def _first(searcher: Searcher, query: str, config: SearchConfig) -> tuple[str, str]:
    searcher.config = config
    try:
        hit = searcher.search(query, k=3)[0]
    finally:
        searcher.config = SearchConfig()
    return hit.page_name, hit.section_title


def test_the_section_with_the_facts_ranks_above_its_signpost(searcher: Searcher) -> None:
    query, answer = "when are the application deadlines?", ("Application deadlines", "Application dates for 2027")
    served = SearchConfig()
    assert served.signpost_penalty > 0
    assert _first(searcher, query, served) == answer
    # Without the signal the signpost, which restates the question's words, comes first.
    assert _first(searcher, query, replace(served, signpost_penalty=0.0)) != answer


def test_the_section_with_the_fact_ranks_above_a_students_story_of_the_same_topic(searcher: Searcher) -> None:
    query, answer = "how much does a room in the Nordhavn hall cost each month", ("Housing", "Rooms in halls")
    served = SearchConfig()
    assert served.testimonial_penalty > 0
    assert _first(searcher, query, served) == answer
    # Without the signal the story, which repeats the question's words, comes first.
    story = ("Student stories", "Living in Nordhavn")
    assert _first(searcher, query, replace(served, testimonial_penalty=0.0)) == story


def test_a_general_question_gets_the_general_page_and_a_named_programme_its_own(searcher: Searcher) -> None:
    served = SearchConfig()
    assert served.scope_penalty > 0
    question = "how much is the tuition fee per semester outside the EU"
    assert _first(searcher, question, served)[0] == "Tuition fees"
    assert _first(searcher, question, replace(served, scope_penalty=0.0, signpost_penalty=0.0))[0] in PROGRAMMES
    assert _first(searcher, f"{question} for {PROGRAMMES[2]}", served) == (PROGRAMMES[2], "Tuition fees")


def test_a_two_step_answer_cites_the_page_the_first_section_refers_to(searcher: Searcher) -> None:
    question = f"What are the entry requirements of {PROGRAMMES[1]}?"
    hit = searcher.search(question, k=3)[0]
    assert (hit.page_name, hit.section_title) == (PROGRAMMES[1], "Entry requirements")
    assert [p.page_name for p in hit.see_also] == ["English level A"]
    answer = Answerer(searcher).answer(question)
    assert answer.found
    cited = [(c.page_name, c.section_title) for c in answer.citations]
    assert cited[0] == (PROGRAMMES[1], "Entry requirements")
    assert ("English level A", "Accepted test scores") in cited
