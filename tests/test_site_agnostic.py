"""The recipe, search and answer code knows no particular site: everything site-specific is read from the
corpus (sitetune.sitevocab). Checked on three real or realistic sites: the bundled sample site, the
Stirling mirror and the CBS corpus."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from sitetune.config import CrawlConfig
from sitetune.corpus import Corpus
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.pairs.questions import questions_for
from sitetune.pairs.retrieval import build_retrieval_pairs, programme_pages
from sitetune.recordio import read_records
from sitetune.records import SectionRecord
from sitetune.search.programs import ProgramDetector, abbreviates, abbreviations
from sitetune.sitevocab import (
    SiteVocabulary,
    capitalised_phrases,
    degree_prefixes,
    entity_names,
    site_name,
    site_name_forms,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "sitetune"
# Words that name one of the sites sitetune was developed on; none may appear in library code.
SITE_WORDS = re.compile(r"\b(cbs|copenhagen|denmark|danish|stirling|scotland)\b", re.IGNORECASE)
# Words naming a site or its country: an anchor may use one only if the site's own pages do.
FOREIGN_WORDS = ("cbs", "copenhagen", "denmark", "danish", "stirling", "scotland", "harbour", "northport")
FAST = CrawlConfig(delay_s=0.0, backoff_s=0.05, max_backoff_s=0.1, timeout_s=5.0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    out = tmp_path_factory.mktemp("sample") / "sample.jsonl"
    crawl_folder(sample_site_dir(), out, config=FAST, progress=False)
    return Corpus.from_records(read_records(out))


@pytest.fixture(scope="module")
def stirling(stirling_corpus: Path) -> Corpus:
    return Corpus.load(stirling_corpus)


def _local(records: tuple[SectionRecord, ...]) -> list[SectionRecord]:
    """The same pages served from a local mirror: the URL host says nothing."""
    return [
        SectionRecord(r.page_name, r.section_title, r.section_type, r.text,
                      re.sub(r"^https?://[^/]+", "http://127.0.0.1:8123", r.url))
        for r in records
    ]


def test_site_name_is_read_from_the_pages(sample: Corpus, stirling: Corpus, cbs_corpus: Corpus) -> None:
    assert site_name(sample.records) == "Harbour School of Business"
    assert site_name(stirling.records) == "University of Stirling"
    assert site_name(cbs_corpus.records) in ("CBS", "Copenhagen Business School")
    assert set(site_name_forms(cbs_corpus.records)) == {"CBS", "Copenhagen Business School"}
    # Without a usable host (a local mirror) the text alone still names each site.
    assert site_name(_local(sample.records)) == "Harbour School of Business"
    assert site_name(_local(stirling.records)) == "University of Stirling"
    assert site_name(_local(cbs_corpus.records)) in ("CBS", "Copenhagen Business School")


def test_a_site_that_never_names_itself_has_no_name() -> None:
    records = [
        SectionRecord(f"Page {i}", "Opening hours", "Opening hours", "We open at nine and close at five.",
                      f"http://127.0.0.1:9000/p{i}.html")
        for i in range(5)
    ]
    assert site_name(records) == ""
    vocabulary = SiteVocabulary.of(records)
    assert vocabulary.name == "" and vocabulary.degree_prefixes == ()
    # A host that names the organisation is the last resort.
    hosted = [SectionRecord(r.page_name, r.section_title, r.section_type, r.text,
                            f"https://www.northport-college.example/{i}") for i, r in enumerate(records)]
    assert site_name(hosted) == "Northport College"


def test_capitalised_phrases() -> None:
    text = "The University of the Arts' students join Open Days. If I apply, CBS answers. Our Library"
    assert capitalised_phrases(text) == ["University of the Arts", "Open Days", "CBS"]


def test_degree_prefixes_come_from_the_page_names(sample: Corpus, stirling: Corpus, cbs_corpus: Corpus) -> None:
    assert degree_prefixes(sample.pages) == ("MSc",)
    assert "MSc" in degree_prefixes(cbs_corpus.pages)
    assert degree_prefixes(stirling.pages) == ()  # "Research news", "Research themes" ... are no degrees
    pages = ["BA (Hons) Accountancy", "BA (Hons) Economics", "BA (Hons) History", "Contact us",
             "Master of Science in Ecology", "Master of Science in Data", "Master of Science in Law"]
    prefixes = degree_prefixes(pages)
    assert "BA (Hons)" in prefixes and "Master of Science in" in prefixes
    assert entity_names("BA (Hons) Accountancy", prefixes) == ["BA (Hons) Accountancy", "Accountancy"]
    assert entity_names("Master of Science in Law", prefixes)[-1] == "Law"
    assert entity_names("Contact us", prefixes) == ["Contact us"]


def test_common_words_hold_the_site_name(sample: Corpus, stirling: Corpus, cbs_corpus: Corpus) -> None:
    assert {"harbour", "school"} <= SiteVocabulary.of(sample.records).common_words
    assert "stirling" in SiteVocabulary.of(stirling.records).common_words
    cbs = SiteVocabulary.of(cbs_corpus.records).common_words
    assert "cbs" in cbs and "deadline" not in cbs and "english" not in cbs


def test_site_words_are_no_evidence_for_an_answer(base_encoder: object) -> None:
    from sitetune.answer.extractive import SentenceScorer

    sentences = ["The deadline is 1 March.", "Harbour is a port city."]
    plain = SentenceScorer(base_encoder, common_words=())  # type: ignore[arg-type]
    site = SentenceScorer(base_encoder, common_words={"harbour"})  # type: ignore[arg-type]
    assert plain.lexical_overlap("deadline at Harbour", sentences).tolist() == [0.5, 0.5]
    assert site.lexical_overlap("deadline at Harbour", sentences).tolist() == [1.0, 0.0]


def _anchors(corpus: Corpus) -> tuple[list[str], list[str]]:
    data = build_retrieval_pairs(corpus.records).dataset
    questions = [a for a, k in zip(data["anchor"], data["kind"], strict=True) if k == "question"]
    return list(data["anchor"]), questions


@pytest.mark.parametrize("site", ["sample", "stirling"])
def test_anchors_name_no_other_site(site: str, request: pytest.FixtureRequest) -> None:
    corpus: Corpus = request.getfixturevalue(site)
    own = " ".join(r.page_name + " " + r.section_title + " " + r.text for r in corpus.records).lower()
    anchors, questions = _anchors(corpus)
    assert questions
    for word in FOREIGN_WORDS:
        if re.search(rf"\b{word}\b", own):
            continue
        offending = [a for a in anchors if re.search(rf"\b{word}\b", a, re.IGNORECASE)]
        assert not offending, f"{site}: anchors mention {word!r}, which its pages never do: {offending[:3]}"
    name = SiteVocabulary.of(corpus.records).name
    assert any(name.lower() in q.lower() for q in questions), f"no question names the site {name!r}"


def test_sample_questions_name_programmes_without_their_degree(sample: Corpus) -> None:
    assert programme_pages(sample.records) >= {p for p in sample.pages if p.startswith("MSc in ")}
    _, questions = _anchors(sample)
    short = [q for q in questions if "supply chain management" in q.lower()]
    assert any("msc" not in q.lower() for q in short), short


def test_questions_without_a_site_name_skip_the_site_templates() -> None:
    named = questions_for("Contact", "Contact the admissions team", random.Random(1), 20,
                          programme=False, site="Northport College")
    assert any("Northport College" in q for q in named)
    bare = questions_for("Contact", "Contact the admissions team", random.Random(1), 20, programme=False)
    assert bare and not any("{" in q or " at ?" in q or q.rstrip("?").endswith(" at") for q in bare)


def test_detector_reads_degrees_from_the_site(sample: Corpus, stirling: Corpus) -> None:
    detector = ProgramDetector(sample.pages)
    assert detector.detect("what IELTS score do I need for supply chain management") == [
        "MSc in Supply Chain Management"
    ]
    assert detector.detect("sustainable energy deadline") == ["MSc in Sustainable Business and Energy"]
    stir = ProgramDetector(stirling.pages)
    assert stir.degree_prefixes == ()
    assert "Accommodation" in stir.detect("student accommodation prices")


def test_library_code_names_no_site() -> None:
    offending = []
    for path in sorted(SRC.rglob("*")):
        if not path.is_file() or "data" in path.relative_to(SRC).parts[:1] or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if SITE_WORDS.search(line):
                offending.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offending, "site names in library code:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    ("short", "name", "expected"),
    [("SCM", "MSc in Economics and Business Administration - Supply Chain Management", True),
     ("FIN", "Finance and Investments", True),
     ("BADS", "MSc in Business, Language and Culture - Business and Development Studies", True),
     ("PHIL", "MSc in Business Administration and Philosophy", True),
     ("NON", "Non-EU/EEA citizens", False),  # the page's own word, not an abbreviation of it
     ("YOUR", "Non-EU/EEA citizens", False),
     ("MCS", "Supply Chain Management", False)],  # letters out of order
)
def test_abbreviates(short: str, name: str, expected: bool) -> None:
    assert abbreviates(short, name) is expected


def test_abbreviations_are_read_from_the_pages_that_use_them(cbs_corpus: Corpus, stirling: Corpus) -> None:
    found = abbreviations((f"{c.section_title}\n{c.text}", c.pages) for c in cbs_corpus.chunks)
    assert found["scm"] == "MSc in Economics and Business Administration - Supply Chain Management"
    assert found["ibp"] == "MSc in International Business and Politics"
    # Shouted words, test names and words used all over the site name no page.
    assert not {"your", "non", "eea", "ielts", "toefl", "ects"} & set(found)
    detector = ProgramDetector(cbs_corpus.pages, aliases=found)
    # An abbreviation names its page and the page its name's last part names (the programme's admission page).
    assert detector.detect("scm ielts") == [
        "MSc in Economics and Business Administration - Supply Chain Management", "Supply Chain Management"
    ]
    assert detector.detect("scm ielts", abbreviations=False) == []
    assert set(detector.detect("SCM ielts")) == set(detector.detect("supply chain management ielts"))
    # A site with no page abbreviations in its text gets none from another's.
    stir = abbreviations((f"{c.section_title}\n{c.text}", c.pages) for c in stirling.chunks)
    assert not {"scm", "ibp", "fin"} & set(stir)


def test_template_pages_are_the_pages_built_on_sections_many_pages_share() -> None:
    from sitetune.sitevocab import template_pages

    shared = ["Entry requirements", "Selection criteria", "Course overview (Part 2)", "Deadlines"]
    sections = [(f"Programme {i}", title) for i in range(4) for title in shared]
    sections += [("Programme 0", "Meet the students"), ("Scholarships", "Scholarships"), ("Scholarships", "Contact")]
    sections += [(f"Programme {i}", "Contact") for i in range(4)]
    assert template_pages(sections) == {f"Programme {i}" for i in range(4)}
    # Three pages sharing the sections are not enough to call them a template.
    assert template_pages([s for s in sections if s[0] != "Programme 3"]) == frozenset()
