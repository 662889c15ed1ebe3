"""The units an extractive answer quotes: prose sentences, whole list items under their lead-in, rows with their label.

Section text keeps the page's line structure (``sitetune.sectionize``): one line per paragraph, ``- item``
per list item (nested items indented), ``cell: cells`` per table row. A unit is the smallest piece an
answer may quote, together with the line that gives it its meaning:

- a sentence of a prose line;
- a list item, whole (with its nested items), under the list's lead-in line ("You need one of these:");
- a short ``key: value`` line of a run of such lines (a table row, a date), under the run's label line
  ("Autumn semester") or, for a table, its header row ("University: Degree").

The lead-in or label is part of what is scored and what is quoted, so a unit is never a bare line cut off
from what it refers to, and nothing inside a list item is ever cut. Text without line breaks (a corpus
that flattened its lists) is prose: its units are its sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sitetune.sentences import split_sentences

_ITEM = re.compile(r"^(\s*)[-•*–]\s+(\S.*)$")
#: A row-like line: a short label, a colon, a value ("Teaching starts: Monday 12 September").
_ROW = re.compile(r"^[^:]{1,60}:\s+\S")
#: Longest line (in words) read as a table row or a label rather than prose.
ROW_WORDS = 16
LABEL_WORDS = 8


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a section.

    Attributes:
        kind: ``"sentence"``, ``"item"`` (a list item) or ``"row"`` (a key: value line).
        text: The piece itself, verbatim: a sentence, a list item's line(s) with their ``- `` markers, a row.
        lead: The line it depends on (a list's lead-in, a run of rows' label), quoted above it; may be "".
        block: Index of the structural block it belongs to (a paragraph, a list, a run of rows), so
            pieces of one list are quoted as one list under one lead-in.
        order: Reading order within the section.
    """

    kind: str
    text: str
    lead: str
    block: int
    order: int

    @property
    def scored(self) -> str:
        """What is compared with the question: the lead-in and the piece, markers removed."""
        body = " ".join(_strip_marker(line) for line in self.text.splitlines())
        return f"{self.lead} {body}".strip() if self.lead else body


def _strip_marker(line: str) -> str:
    match = _ITEM.match(line)
    return match.group(2).strip() if match else line.strip()


def _is_item(line: str) -> bool:
    return _ITEM.match(line) is not None


def _indent(line: str) -> int:
    match = _ITEM.match(line)
    return len(match.group(1)) if match else 0


def _is_row(line: str) -> bool:
    return len(line.split()) <= ROW_WORDS and _ROW.match(line.strip()) is not None


def _is_header(line: str) -> bool:
    """A table's header row as sectionize writes it ("University: Degree"): short cells, no figures."""
    key, _, value = line.strip().partition(": ")
    cells = [key, *value.split(", ")]
    return not any(c.isdigit() for c in line) and all(0 < len(cell.split()) <= 3 for cell in cells)


def _is_label(line: str) -> bool:
    """A short line that names what follows (a heading inside a section): few words, no end punctuation."""
    stripped = line.strip()
    return 0 < len(stripped.split()) <= LABEL_WORDS and not stripped.endswith((".", "!", "?", ";", ","))


def _lead_of(line: str) -> str:
    """The part of a prose line that leads into what follows it: its last sentence."""
    sentences = split_sentences(line)
    return sentences[-1] if sentences else ""


def _kind(line: str) -> str:
    if _is_item(line):
        return "item"
    if _is_row(line):
        return "row"
    return "short" if _is_label(line) else "prose"


def _lead(lines: list[str], kinds: list[str], start: int, kind: str) -> str:
    """The lead-in of the run starting at ``start``: the line before it when that line introduces it."""
    if start == 0:
        return ""
    before, before_kind = lines[start - 1].strip(), kinds[start - 1]
    if before_kind == "short" and kind != "short":
        return before  # a heading inside the section
    if before_kind == "prose" and (kind == "item" or before.endswith(":")):
        return _lead_of(before)  # "You need one of these:" / the paragraph a list continues
    return ""


def split_units(text: str) -> list[Unit]:
    """The quotable units of one section's text, in reading order.

    Lines are read in runs of one kind: list items (a nested item stays inside the item above it),
    ``key: value`` rows, short lines without end punctuation (a list without markers), and prose lines.
    A run's lead-in is the line just before it when that line introduces it: a heading (one short line),
    or the prose a list follows (its last sentence). A single short line followed by other text is only a
    lead-in: a heading is no answer on its own.

    Args:
        text: The section's text (lines separated by ``\\n``).

    Returns:
        Units; list items and rows carry their lead-in, as does the first sentence under a heading.
        Blank text gives an empty list.
    """
    lines = [line.rstrip() for line in text.split("\n") if line.strip()]
    kinds = [_kind(line) for line in lines]
    units: list[Unit] = []
    block = 0
    i = 0
    while i < len(lines):
        kind = kinds[i]
        lead = _lead(lines, kinds, i, kind)
        if kind == "item":
            base = _indent(lines[i])
            while i < len(lines) and kinds[i] == "item":
                item = [lines[i]]
                i += 1
                # Deeper items belong to the item above them: never quoted without it, never cut off it.
                while i < len(lines) and kinds[i] == "item" and _indent(lines[i]) > base:
                    item.append(lines[i])
                    i += 1
                units.append(Unit("item", "\n".join(item), lead, block, len(units)))
        elif kind in ("row", "short"):
            end = i + 1
            while end < len(lines) and kinds[end] == kind:
                end += 1
            if kind == "row" and end - i >= 3 and _is_header(lines[i]):
                lead, i = lines[i].strip(), i + 1  # a table's header row: quoted above any row of it
            if not (kind == "short" and end == i + 1 and end < len(lines)):  # else a heading: a lead only
                first = len(units)
                units += [Unit("row", line.strip(), lead, block, first + n) for n, line in enumerate(lines[i:end])]
            i = end
        else:
            for n, sentence in enumerate(split_sentences(lines[i])):
                units.append(Unit("sentence", sentence, lead if n == 0 else "", block, len(units)))
            i += 1
        block += 1
    return units
