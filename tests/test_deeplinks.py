"""Text-fragment deep links and the answer's quoted spans (pure functions; the browser test opens them)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from sitetune.serve.deeplinks import (
    EXACT_WORDS,
    cited_segments,
    deep_link,
    encode_term,
    opening_link,
    quote_link,
    quoted_spans,
    text_directive,
)


def _terms(directive: str) -> list[str]:
    """The decoded terms of ``text=...`` split on the directive's own commas."""
    assert directive.startswith("text=")
    return [unquote(t) for t in directive.removeprefix("text=").split(",")]


def test_terms_encode_the_directive_syntax_characters() -> None:
    encoded = encode_term("e-mail, fees & deadlines: 12:00 #1 50% (approx.) ~ café")
    for raw in "-,&:# ":
        assert raw not in encoded, raw
    assert "%2D" in encoded and "%2C" in encoded and "%26" in encoded and "%25" in encoded
    assert "caf%C3%A9" in encoded and "(approx.)" in encoded and "~" in encoded
    assert unquote(encoded) == "e-mail, fees & deadlines: 12:00 #1 50% (approx.) ~ café"


def test_a_short_sentence_is_matched_exactly() -> None:
    directive = text_directive("You must accept it within 14 days.")
    assert directive == "text=You%20must%20accept%20it%20within%2014%20days."


def test_a_long_sentence_is_matched_by_start_and_end_words() -> None:
    sentence = "Grading follows the local 12-point scale, and the pass mark is 02 for every course."
    assert len(sentence.split()) > EXACT_WORDS
    directive = text_directive(sentence)
    assert directive is not None
    assert _terms(directive) == ["Grading follows the local 12-point", "is 02 for every course."]
    assert "%2D" in directive  # the hyphen of "12-point" must not read as a suffix marker


def test_a_list_is_bracketed_by_its_first_and_last_item_without_bullets() -> None:
    passage = "One of the following is accepted:\n- IELTS 7.0 overall\n- TOEFL iBT 94\n- Pearson PTE 65"
    directive = text_directive(passage)
    assert directive is not None
    start, end = _terms(directive)
    assert start == "One of the following is" and end == "Pearson PTE 65"


def test_table_rows_and_glued_blocks_are_not_crossed_by_a_term() -> None:
    row = text_directive("Harbour School of Business: BSc in International Shipping and Trade")
    assert row is not None
    assert _terms(row) == ["Harbour School of Business", "in International Shipping and Trade"]
    # Scraped text glues two blocks: "...roundWe" / "round.We"; a term stops before the glued word.
    glued = text_directive("Apply in the winter application roundThe deadline is in March for everyone")
    assert glued is not None and "roundThe" not in unquote(glued)
    sentence_glue = text_directive("Apply in the winter round.We answer within two weeks")
    assert sentence_glue is not None
    assert _terms(sentence_glue) == ["Apply in the winter round.", "We answer within two weeks"]


def test_prefix_pins_the_passage_and_may_come_from_the_previous_block() -> None:
    directive = text_directive("BSc in Economics", before="Bachelor's degrees that give access\nUniversity: Degree")
    assert directive is not None
    assert _terms(directive) == ["Degree-", "BSc in Economics"]
    assert text_directive("   \n - ") is None


def test_deep_link_keeps_or_sets_the_heading_anchor_and_caps_directives() -> None:
    url = "https://www.example.org/a/page.html?x=1#old"
    assert deep_link(url, []) == url
    assert deep_link(url + ":~:text=stale", ["text=new"]) == "https://www.example.org/a/page.html?x=1#old:~:text=new"
    assert deep_link(url, ["text=a", None, "text=b"], anchor="fees and costs") == (
        "https://www.example.org/a/page.html?x=1#fees%20and%20costs:~:text=a&text=b"
    )
    assert deep_link("https://e.org/p", [f"text={i}" for i in range(6)]).count("text=") == 3
    assert deep_link("https://e.org/p", []) == "https://e.org/p"


def test_opening_link_uses_the_heading_only_for_a_first_part() -> None:
    text = "The fee is 8,000 euros per year. Students from the EU pay no fee."
    first = opening_link("https://e.org/p", text, "Fees and costs (Part 1)")
    assert unquote(first).split(":~:text=")[1].startswith("Fees and costs-,The fee is")
    later = opening_link("https://e.org/p", text, "Fees and costs (Part 2)")
    assert unquote(later).split(":~:text=")[1].startswith("The fee is")


def test_cited_segments_follow_the_markers() -> None:
    text = "Apply by 1 March. [1] Fees: none for EU students. [2][3] Letters come in May. [1, 3]"
    assert cited_segments(text, 1) == ["Apply by 1 March. ", " Letters come in May. "]
    assert cited_segments(text, 3) == [" Fees: none for EU students. ", " Letters come in May. "]
    assert cited_segments(text, 4) == []
    assert cited_segments("No markers here.", 1) == []


def test_quoted_spans_find_the_cited_text_in_its_section() -> None:
    section = (
        "Intro sentence here.\nOne of the following is accepted:\n- IELTS 7.0\n- TOEFL 94 points.\n"
        "Tests must be recent. Other text."
    )
    # The answer flattened the list and quoted two separate sentences under one citation.
    answer = "One of the following is accepted: - IELTS 7.0 - TOEFL 94 points. [1] Made-up claim. [2]"
    spans = quoted_spans(answer, 1, section)
    assert [section[a:b] for a, b in spans] == ["One of the following is accepted:\n- IELTS 7.0\n- TOEFL 94 points."]
    two = quoted_spans("Intro sentence here. Tests must be recent. [1]", 1, section)
    assert [section[a:b] for a, b in two] == ["Intro sentence here.", "Tests must be recent."]
    assert quoted_spans(answer, 2, section) == []  # not in the section: nothing to highlight


@pytest.mark.parametrize("bad", ["", "[1]", "text that is elsewhere [1]"])
def test_quote_link_without_spans_is_the_plain_page(bad: str) -> None:
    spans = quoted_spans(bad, 1, "Some section text.")
    assert spans == []
    assert quote_link("https://e.org/p", "Some section text.", spans) == "https://e.org/p"
