"""Sentence splitting for extractive answers: a small rule-based splitter tuned for web-page prose.

A library splitter (punkt, spaCy) would need model data that cannot be downloaded here, and page text is
well-formed enough that a boundary rule plus an abbreviation list does the job.
"""

from __future__ import annotations

import re

# Abbreviations whose trailing period does not end a sentence (lower-cased, without the period).
_ABBREVIATIONS = frozenset(
    {
        "e.g",
        "i.e",
        "etc",
        "approx",
        "incl",
        "cf",
        "vs",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "min",
        "max",
        "ca",
        "fig",
        "dept",
        "univ",
        "ph.d",
        "m.sc",
        "b.sc",
        "msc",
        "bsc",
        "hons",
    }
)

# A candidate boundary: end punctuation (optionally closed by a quote or bracket), whitespace, then
# something that can start a sentence. Scraped pages also glue sentences together ("round.We have"),
# so a period between a lower-case word and a capitalised one is a boundary too.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+(?=[\"“‘(\[]?[A-Z0-9•])|(?<=[a-z][a-z][.!?])(?=[A-Z][a-z])")
_LAST_WORD = re.compile(r"(\S+)$")

#: Longest sentence kept whole, in characters; longer runs (lists without periods) are cut at "; " or ": ".
MAX_SENTENCE_CHARS = 400


def _ends_with_abbreviation(text: str) -> bool:
    match = _LAST_WORD.search(text)
    if not match:
        return False
    word = match.group(1).rstrip(".!?\"'”’)]").lower().lstrip('("“‘[')
    # A single capital letter followed by a period is an initial ("J. Smith"), not an end.
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _cut_long(sentence: str) -> list[str]:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    parts = [p.strip() for p in re.split(r"(?<=[;:])\s+", sentence) if p.strip()]
    out: list[str] = []
    for part in parts:
        if out and len(out[-1]) + 1 + len(part) <= MAX_SENTENCE_CHARS:
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, in reading order, whitespace collapsed.

    Periods after common abbreviations ("e.g.", "approx.", "Prof.") and single initials do not split;
    decimals ("7.5") never match because a boundary needs whitespace after the period. Very long
    sentences (run-on lists) are further cut at semicolons and colons.

    Args:
        text: Plain text of one section.

    Returns:
        Non-empty sentences; an empty list for blank text.
    """
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start()]
        # The lookbehind saw the punctuation; include a closing quote/bracket the match consumed.
        closing = match.group(0).rstrip()
        candidate = (candidate + closing).strip()
        if _ends_with_abbreviation(candidate):
            continue
        if candidate:
            sentences.append(candidate)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [piece for s in sentences for piece in _cut_long(s)]
