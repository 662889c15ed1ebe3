"""Deep links into the source pages: URL text fragments (``#:~:text=``) for quoted passages.

A text fragment (WICG "URL Fragment Text Directives", https://wicg.github.io/scroll-to-text-fragment/)
makes a supporting browser scroll to and highlight a passage of the linked page. Its syntax is
``#[anchor]:~:text=[prefix-,]textStart[,textEnd][,-suffix]``; each term is percent-encoded, and ``-``,
``,`` and ``&`` must be encoded because they are the directive's own syntax.

Three rules of the matching algorithm decide how a passage becomes terms:

- A term matches only within one block of the page (a paragraph, a list item, a table cell). A passage
  that spans blocks (a list, a table row, sentences from two paragraphs) needs ``textStart,textEnd``:
  the start term from its first block, the end term from its last.
- A term must start and end on word boundaries.
- The first match on the page wins, so words that also appear earlier (the site's name in the header, a
  heading repeated in the menu) would point at the wrong place. A ``prefix-`` term (the words just before
  the passage, which may sit in the previous block) pins the passage down; for a section's opening words
  that is the section heading.

Section text records block boundaries as line breaks, list items as ``- `` and table rows as
``cell: cell, cell``; scraped text can also have blocks glued together ("round.We"). Those are where a
term may not cross, so terms are cut there. A browser without text fragments, or a page whose text
changed, opens the page at its top (or at the heading ``anchor``), never an error.

The same module finds which parts of a section an extractive answer quotes, so the page can highlight
them and the citation's link can point at them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from sitetune.sentences import split_sentences

#: Passages of at most this many words inside one block are linked exactly; longer ones by start and end.
EXACT_WORDS = 10
#: Words in each of ``textStart`` and ``textEnd`` of a long passage.
TERM_WORDS = 5
#: Text directives in one link (one per quoted passage; the browser scrolls to the first).
MAX_DIRECTIVES = 3
#: A result's link points at this many opening words of its section.
OPENING_WORDS = 20
#: Words in a ``prefix-`` term.
PREFIX_WORDS = 3

# Where a term may not cross: a line (block) break, a table row's "cell: cell", a list bullet flattened
# into a line (" - "), a cell separator, and two sentences glued by the scrape ("round.We").
_BLOCK_BREAK = re.compile(r"\n|:\s| - | \| |(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])")
# A word that holds a glued block boundary ("programmesCand."); a term stops before it rather than guess.
_GLUED_WORD = re.compile(r"[a-z]{3,}[A-Z][a-z]")
# Bullets and ellipses are not page text (list markers are drawn by CSS; an ellipsis marks a cut).
_NOT_TEXT = frozenset({"-", "–", "•", "*", "·", "…", "...", "|"})
_MARKERS = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_PART = re.compile(r"\s*\(Part (\d+)\)\s*$")


def encode_term(term: str) -> str:
    """Percent-encode one term of a text directive.

    Everything but ASCII letters, digits and ``_.!~*'()`` is encoded (as JavaScript's
    ``encodeURIComponent`` does, UTF-8 for non-ASCII), and ``-`` as well, because the directive uses it
    to mark a prefix or suffix.
    """
    return quote(term, safe="!~*'()").replace("-", "%2D")


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w not in _NOT_TEXT]


def _blocks(passage: str) -> list[list[str]]:
    """The passage's words, grouped by the blocks a term may not cross (empty groups dropped)."""
    groups = (_words(part) for part in _BLOCK_BREAK.split(passage))
    return [g for g in groups if g]


def _term(words: list[str], *, from_end: bool, limit: int = TERM_WORDS) -> str:
    """Up to ``limit`` words from one end of a block, stopping before a word with a glued boundary."""
    ordered = list(reversed(words)) if from_end else words
    taken: list[str] = []
    for word in ordered[:limit]:
        if taken and _GLUED_WORD.search(word):
            break
        taken.append(word)
    return " ".join(reversed(taken) if from_end else taken)


def text_directive(passage: str, before: str = "") -> str | None:
    """The ``text=`` directive (already encoded) that finds ``passage`` on its page, or None if it has no words.

    Args:
        passage: Text copied from a section (it may hold line breaks, list bullets and table rows).
        before: The text just before ``passage`` on the page (the section text before it, or the section
            heading for a section's opening words); its last words become the ``prefix-`` term.

    Returns:
        ``text=[PREFIX-,]START`` for a short passage inside one block, else ``text=[PREFIX-,]START,END``.
    """
    blocks = _blocks(passage)
    if not blocks:
        return None
    preceding = _blocks(before)
    prefix = encode_term(_term(preceding[-1], from_end=True, limit=PREFIX_WORDS)) + "-," if preceding else ""
    first, last = blocks[0], blocks[-1]
    if len(blocks) == 1 and len(first) <= EXACT_WORDS and not any(_GLUED_WORD.search(w) for w in first[1:]):
        return "text=" + prefix + encode_term(" ".join(first))
    start = _term(first, from_end=False)
    # The end term is searched after the start term's match, so in one block they must not overlap.
    rest = last[len(start.split()) :] if len(blocks) == 1 else last
    end = _term(rest, from_end=True)
    return "text=" + prefix + encode_term(start) + ("," + encode_term(end) if end else "")


def deep_link(url: str, directives: Sequence[str | None] = (), anchor: str | None = None) -> str:
    """``url`` pointing at text ``directives`` and at the heading ``anchor`` where there is one.

    The page's own fragment (``#id``) is kept unless ``anchor`` replaces it; a browser that cannot find
    the text still scrolls to the anchor. A fragment directive already in ``url`` is dropped.

    Args:
        url: The page's address.
        directives: From :func:`text_directive`, most important first (None entries are skipped, at most
            MAX_DIRECTIVES are used; the browser highlights each and scrolls to the first).
        anchor: The id of the section's heading on the page, if known.
    """
    base, _, fragment = url.partition("#")
    fragment = fragment.split(":~:", 1)[0]
    if anchor:
        fragment = quote(anchor, safe="")
    kept = [d for d in directives if d][:MAX_DIRECTIVES]
    if not kept:
        return base + ("#" + fragment if fragment else "")
    return base + "#" + fragment + ":~:" + "&".join(kept)


def quote_link(url: str, section_text: str, spans: Sequence[tuple[int, int]], anchor: str | None = None) -> str:
    """``url`` pointing at the ``spans`` of ``section_text`` (each with the words before it as prefix)."""
    return deep_link(url, [text_directive(section_text[a:b], section_text[:a]) for a, b in spans], anchor)


def opening_link(url: str, section_text: str, section_title: str, anchor: str | None = None) -> str:
    """``url`` pointing at the section's opening words, after its heading.

    The heading is the prefix only for a section's first part: a later part (" (Part 2)") follows the
    previous part's text, not the heading.
    """
    part = _PART.search(section_title)
    heading = "" if part and int(part.group(1)) > 1 else _PART.sub("", section_title)
    return deep_link(url, [text_directive(opening_passage(section_text), heading)], anchor)


def opening_passage(section_text: str, words: int = OPENING_WORDS) -> str:
    """The section's first ``words`` words, as they stand in its text (line breaks kept)."""
    spans = list(re.finditer(r"\S+", section_text))
    if not spans:
        return ""
    return section_text[spans[0].start() : spans[min(words, len(spans)) - 1].end()]


def _find(words: list[str], text: str) -> tuple[int, int] | None:
    """Where ``words`` occur in ``text`` with any whitespace (and any bullets) between them."""
    if not words:
        return None
    gap = r"(?:\s+(?:[-–•*·|]\s+)*)"
    match = re.search(gap.join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def _merge(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and not text[merged[-1][1] : start].strip():
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def cited_segments(answer_text: str, n: int) -> list[str]:
    """The parts of ``answer_text`` that a ``[n]`` marker (or ``[.., n, ..]``) closes.

    Each marker closes the text since the previous marker; a marker right after another one shares that
    one's text (``... [1][2]``).
    """
    segments: list[str] = []
    position = 0
    previous = ""
    for match in _MARKERS.finditer(answer_text):
        segment = answer_text[position : match.start()]
        if segment.strip():
            previous = segment
        position = match.end()
        numbers = {int(x) for x in match.group(1).split(",")}
        if n in numbers and previous.strip():
            segments.append(previous)
    return segments


def quoted_spans(answer_text: str, n: int, section_text: str) -> list[tuple[int, int]]:
    """Character spans of ``section_text`` that the answer quotes under citation ``[n]``, in order.

    A cited part is looked for whole first (whitespace, line breaks and list bullets may differ); if it
    is not there verbatim (a generated answer, or sentences from two places), each of its sentences and
    lines is looked for alone. Text that is not in the section is not matched.
    """
    spans: list[tuple[int, int]] = []
    for segment in cited_segments(answer_text, n):
        whole = _find(_words(segment), section_text)
        if whole:
            spans.append(whole)
            continue
        for line in segment.splitlines():
            for sentence in split_sentences(line):
                found = _find(_words(sentence), section_text)
                if found:
                    spans.append(found)
    return _merge(spans, section_text)
