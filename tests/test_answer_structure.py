"""The answer keeps the structure of what it quotes: a list stays a list under its lead-in, a row stays a row
under its label, no list item is cut, and a second section is quoted only by the measured rule.

Sections here are written the way ``sitetune.sectionize`` stores them (one line per paragraph, ``- item``
per list item, ``key: value`` per row); answers are scored by the real base model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sitetune.answer import AnswerBlock, SentenceScorer, extractive_answer, split_units
from sitetune.answer.extractive import render
from sitetune.config import AnswerConfig
from sitetune.search.types import SearchHit

ENGLISH = (
    "Applicants must document English at a high level.\n"
    "We accept one of the following tests:\n"
    "- IELTS Academic with an overall score of 7.0 and no band below 6.5\n"
    "- TOEFL iBT with a total score of 94\n"
    "- Cambridge C1 Advanced with a score of 185\n"
    "Test results must be less than two years old."
)
DATES = (
    "Autumn semester\n"
    "Teaching starts: Monday 12 September 2022\n"
    "Teaching ends: Friday 9 December 2022\n"
    "Spring semester\n"
    "Teaching starts: Monday 23 January 2023\n"
    "Teaching ends: Friday 28 April 2023"
)
ECTS = (
    "Your bachelor must include 30 ECTS points in business economics. "
    "Courses in statistics count towards the 30 ECTS points."
)
LONG_ITEM = (
    "- a bachelor degree in economics; a bachelor degree in business administration; "
    + "; ".join(f"a bachelor degree in a related field number {n} with at least 60 ECTS in quantitative subjects"
                for n in range(6))
)


def _hit(n: int, text: str, title: str = "Admission") -> SearchHit:
    return SearchHit(f"{n:016x}", text, 1.0 / (n + 1), "MSc in Example Studies", title, f"https://example.org/{n}")


@pytest.fixture(scope="module")
def scorer(base_encoder: Any) -> SentenceScorer:
    return SentenceScorer(base_encoder, AnswerConfig())


def test_list_items_keep_their_lead_in_and_nested_items_stay_inside_their_item() -> None:
    units = split_units("Choose one track:\n- Finance\n  - with a thesis\n- Marketing")
    # A short lead-in is no answer alone: it is quoted with the items it introduces.
    assert [(u.kind, u.text, u.lead) for u in units] == [
        ("item", "- Finance\n  - with a thesis", "Choose one track:"),
        ("item", "- Marketing", "Choose one track:"),
    ]


def test_rows_keep_their_label_and_a_heading_is_only_a_lead_in() -> None:
    units = split_units(DATES)
    assert [(u.kind, u.text, u.lead) for u in units] == [
        ("row", "Teaching starts: Monday 12 September 2022", "Autumn semester"),
        ("row", "Teaching ends: Friday 9 December 2022", "Autumn semester"),
        ("row", "Teaching starts: Monday 23 January 2023", "Spring semester"),
        ("row", "Teaching ends: Friday 28 April 2023", "Spring semester"),
    ]
    heading = split_units("Study abroad\nYou can spend a semester at a partner university. It counts.")
    assert [(u.text, u.lead) for u in heading] == [
        ("You can spend a semester at a partner university.", "Study abroad"),
        ("It counts.", ""),
    ]


TABLE = (
    "Bachelor's degrees that give direct access (no assessment of course content needed)\n"
    "University: Degree\n"
    "Harbour School of Business: BSc in Business Administration and Economics\n"
    "Northport Technical University: BEng in Production Engineering\n"
    "University of Westmere: BSc in Economics"
)


def test_a_table_row_keeps_its_header_row(scorer: SentenceScorer) -> None:
    rows = [u for u in split_units(TABLE) if u.kind == "row"]
    assert [u.text for u in rows] == TABLE.splitlines()[2:]
    assert {u.lead for u in rows} == {"University: Degree"}
    answer = extractive_answer("is a BEng in Production Engineering from Northport accepted",
                               [_hit(0, TABLE, "Entry requirements")], scorer)
    assert answer.found
    header = answer.blocks.index(AnswerBlock("text", ("University: Degree",)))
    assert answer.blocks[header + 1].kind == "rows"
    assert "Northport Technical University: BEng in Production Engineering" in answer.blocks[header + 1].lines


def test_text_without_line_breaks_is_read_as_sentences() -> None:
    assert [(u.kind, u.text) for u in split_units(ECTS)] == [
        ("sentence", "Your bachelor must include 30 ECTS points in business economics."),
        ("sentence", "Courses in statistics count towards the 30 ECTS points."),
    ]


def test_a_long_list_item_is_one_unit_never_cut() -> None:
    units = split_units("Applicants qualify with one of these degrees, among others:\n" + LONG_ITEM)
    assert len(LONG_ITEM) > 400  # longer than the sentence splitter's cut for run-on text
    assert [u.text for u in units if u.kind == "item"] == [LONG_ITEM]


def test_a_list_answer_stays_a_list_under_its_lead_in(scorer: SentenceScorer) -> None:
    answer = extractive_answer("what IELTS score do I need", [_hit(0, ENGLISH, "English requirements")], scorer)
    assert answer.found
    lists = [b for b in answer.blocks if b.kind == "list"]
    assert lists and any("IELTS Academic" in line for line in lists[0].lines)
    # Every quoted item is a whole line of the section, with its marker, under the list's lead-in.
    section_lines = ENGLISH.splitlines()
    assert all(line in section_lines for line in lists[0].lines)
    lead = answer.blocks[answer.blocks.index(lists[0]) - 1]
    assert lead == AnswerBlock("text", ("We accept one of the following tests:",))
    assert "We accept one of the following tests:\n- IELTS Academic" in answer.text
    assert answer.text == render(answer.blocks) and answer.text.endswith("[1]")


def test_a_row_answer_keeps_its_label(scorer: SentenceScorer) -> None:
    answer = extractive_answer("when does teaching start in the autumn semester", [_hit(0, DATES, "Dates")], scorer)
    assert answer.found
    assert "Autumn semester\nTeaching starts: Monday 12 September 2022" in answer.text
    assert any(b.kind == "rows" for b in answer.blocks)


def test_a_quoted_long_item_is_quoted_whole(scorer: SentenceScorer) -> None:
    hit = _hit(0, "Qualifying degrees:\n" + LONG_ITEM + "\n- a degree in law", "Qualifying degrees")
    answer = extractive_answer("is a bachelor degree in economics qualifying", [hit], scorer)
    assert answer.found
    quoted = [line for b in answer.blocks for line in b.lines]
    assert LONG_ITEM in quoted
    assert all(line in hit.text.splitlines() for line in quoted if line.startswith("-"))


def test_a_second_section_is_quoted_only_within_the_second_margin(scorer: SentenceScorer) -> None:
    hits = [_hit(0, ENGLISH, "English requirements"), _hit(1, ECTS, "Academic requirements")]
    question = "what IELTS score and how many ECTS points in business economics do I need"
    config = replace(AnswerConfig(), top_hit_bonus=0.0, margin=0.0, max_sentences=10)
    evidence = {u.text: float(s) for (u, _), s in zip(
        (pair for h in hits for pair in scorer.unit_views(h)),
        scorer.score(question, [v for h in hits for _, v in scorer.unit_views(h)]), strict=True)}
    best = max(evidence.values())
    best_other = max(evidence[u.text] for u in split_units(ECTS))
    best_first = max(evidence[u.text] for u in split_units(ENGLISH))
    gap = abs(best_first - best_other)
    assert gap > 0.001 and best >= config.min_score
    below = SentenceScorer(scorer.encoder, replace(config, second_margin=gap - 0.001))
    above = SentenceScorer(scorer.encoder, replace(config, second_margin=gap + 0.001))
    one = extractive_answer(question, hits, below)
    two = extractive_answer(question, hits, above)
    assert len(one.citations) == 1
    assert len(two.citations) == 2
    # The second section adds its own words; the first section's quote is unchanged.
    assert two.text.startswith(one.text.removesuffix(" [1]"))


def test_the_top_hit_bonus_chooses_what_to_quote_but_not_whether_to_answer(scorer: SentenceScorer) -> None:
    hits = [_hit(0, ECTS, "Academic requirements"), _hit(1, ENGLISH, "English requirements")]
    question = "what IELTS score do I need"
    plain = extractive_answer(question, hits, SentenceScorer(scorer.encoder, replace(
        AnswerConfig(), top_hit_bonus=0.0, second_margin=0.0)))
    boosted = extractive_answer(question, hits, SentenceScorer(scorer.encoder, replace(
        AnswerConfig(), top_hit_bonus=1.0, second_margin=0.0)))
    assert plain.citations[0].chunk_id == hits[1].chunk_id  # the English section matches best
    assert boosted.citations[0].chunk_id == hits[0].chunk_id  # search's first section, with a large bonus
    assert boosted.score == plain.score  # the "not found" decision reads the evidence alone
