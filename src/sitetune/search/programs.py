"""Programme detection: which pages a query names ("Supply Chain Management", "finance and investments", "SCM").

Each page name yields a few name variants (the whole name, the parts around " - ", "/" or ":", the name
without its degree prefix); a variant's *key words* are its words minus degree words and stop words. A
query names a page when it contains every key word of one of its variants. Variants shared by many pages
name none, and single common words ("Graduate") are ignored.

Everything site-specific is read from the page names themselves (:mod:`sitetune.sitevocab`): degree
prefixes are the degree-shaped words that start several names ("MSc in ..."), and *family* words come
from a name's leading part that several names share before different specialisations ("MSc in Economics
and Business Administration - Supply Chain Management", "... - Finance and Investments").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sitetune.sitevocab import degree_prefixes, prefix_pattern

#: An abbreviation names a page when at least this share of the sections using it are on that page ...
ABBREVIATION_SHARE = 0.4
#: ... and it is used in at least this many sections.
ABBREVIATION_USES = 3
_ABBREVIATION = re.compile(r"\b[A-Z]{2,6}\b")

# Function words, and the nouns any university site uses for a programme: none of them names one.
_STOP = frozenset(
    """a an and the of in on for to with at by or master masters programme programmes program programs
    degree""".split()  # noqa: SIM905 (a word list reads better as prose)
)
#: A variant naming more pages than this is a family name, not a programme.
MAX_PAGES_PER_VARIANT = 3
#: A word in this many page names is shared, not distinctive.
SHARED_WORD_PAGES = 5
_PARTS = re.compile(r"\s+-\s+|\s*/\s*|:\s+")


def words(text: str) -> list[str]:
    """Lower-case word tokens with '&' read as 'and' and a plural 's' dropped from longer words."""
    tokens = re.findall(r"[a-z0-9æøåéèêüöä]+", text.lower().replace("&", " and "))
    return [t[:-1] if len(t) > 4 and t.endswith("s") and not t.endswith("ss") else t for t in tokens]


def family_labels(pages: Iterable[str]) -> set[str]:
    """Leading name parts that several names share before different endings.

    "MSc in Economics and Business Administration - Supply Chain Management" and "... - Finance and
    Investments" share the family "MSc in Economics and Business Administration", which names neither.
    """
    endings: dict[str, set[str]] = defaultdict(set)
    for page in pages:
        parts = [p.strip() for p in re.split(r"\s+-\s+", " ".join(page.split())) if p.strip()]
        if len(parts) > 1:
            endings[parts[0].lower()].add(parts[-1].lower())
    return {lead for lead, ends in endings.items() if len(ends) >= 2}


def _variants(page: str, prefix: re.Pattern[str] | None) -> set[str]:
    def strip(name: str) -> str:
        return prefix.sub("", name.strip()) if prefix is not None else name.strip()

    name = re.sub(r"\([^)]*\)", " ", page)
    out = {name, strip(name)}
    parts = [p for p in _PARTS.split(name) if p.strip()]
    if len(parts) > 1:
        out.add(parts[-1])
        out.update(strip(p) for p in parts)
    return {v.strip() for v in out if v.strip()}


def abbreviates(short: str, name: str) -> bool:
    """Whether ``short`` is made of prefixes of successive words of ``name`` ("SCM", "FIN", "SOL", "BADS").

    Each letter group is the start of a word, in order, words may be skipped, and ``short`` is not itself
    one of the name's words (a page's own word is matched by the name variants already).
    """
    name_words = re.findall(r"[a-z0-9]+", name.lower().replace("&", " and "))
    short = short.lower()
    if short in name_words:
        return False

    def fits(rest: str, start: int) -> bool:
        if not rest:
            return True
        for i in range(start, len(name_words)):
            word = name_words[i]
            for n in range(min(len(word), len(rest)), 0, -1):
                if word[:n] == rest[:n] and fits(rest[n:], i + 1):
                    return True
        return False

    return fits(short, 0)


def abbreviations(sections: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """Abbreviations the site uses for its pages: ``{"scm": "MSc in ... - Supply Chain Management"}``.

    A capitalised word of 2–6 letters ("SCM", "IBP") names a page when the sections that use it are mostly
    on that page (``ABBREVIATION_SHARE`` of at least ``ABBREVIATION_USES``) and it abbreviates the page's
    name (:func:`abbreviates`). Shouted words ("YOUR", "NON-EU") and test names ("IELTS") fail the second
    test; a student's page mentioning "SCM" fails the first.

    Args:
        sections: (text, pages it appears on) per section; the text should include its title.
    """
    uses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for text, pages in sections:
        for short in set(_ABBREVIATION.findall(text)):
            for page in pages:
                uses[short][page] += 1
    found: dict[str, str] = {}
    for short, by_page in uses.items():
        total = sum(by_page.values())
        page, n = max(by_page.items(), key=lambda pn: pn[1])
        if total >= ABBREVIATION_USES and n / total >= ABBREVIATION_SHARE and abbreviates(short, page):
            found[short.lower()] = page
    return found


class ProgramDetector:
    """Finds the pages a query names.

    Args:
        pages: Every page name of the index.
        min_single_word: Shortest key word accepted when a variant has only one.
        common_words: Words too common in the corpus to name a page alone (e.g. "graduate").
        aliases: Abbreviations of page names (:func:`abbreviations`): a query word equal to one names that
            page and the pages its full name names.

    Use :meth:`detect` on a query; it returns page names, most specific match first.
    """

    def __init__(
        self,
        pages: Sequence[str],
        *,
        min_single_word: int = 4,
        common_words: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        common = {w for c in common_words for w in words(c)}
        prefixes = degree_prefixes(pages)
        prefix = prefix_pattern(prefixes)
        stop = _STOP | {w for p in prefixes for w in words(p)}
        # Words of a degree family ("economics", "business", "administration") never tell its members
        # apart, however few pages a small site has.
        family = {w for label in family_labels(pages) for w in words(label)} - stop
        # Words in many page names ("business", "administration") do not tell programmes apart; a word
        # in at most two names (a programme's page and its overview page) can name it alone.
        frequency: dict[str, int] = defaultdict(int)
        for page in set(pages):
            for w in set(words(page)) - stop:
                frequency[w] += 1
        shared = {w for w, n in frequency.items() if n >= SHARED_WORD_PAGES} | family
        unique = {w for w, n in frequency.items() if n <= 2 and w not in common}
        self._shared = shared
        self.degree_prefixes = prefixes
        self._degree_words = {w for p in prefixes for w in words(p)}
        by_key: dict[frozenset[str], set[str]] = defaultdict(set)
        for page in pages:
            acronyms = {w.lower() for w in re.findall(r"\b[A-Z]{3,}\b", page)}
            for variant in _variants(page, prefix):
                full = frozenset(w for w in words(variant) if w not in stop)
                for key in {full, full - shared}:
                    if len(key) == 1:
                        (word,) = key
                        if not (word in acronyms or (word in unique and len(word) >= min_single_word)):
                            continue
                    if key and not key <= family:  # a degree family alone names no programme
                        by_key[key].add(page)
        self._keys = [(key, tuple(sorted(p))) for key, p in by_key.items() if len(p) <= MAX_PAGES_PER_VARIANT]
        # Longer keys are more specific: "finance and strategic management" before "finance".
        self._keys.sort(key=lambda kp: -len(kp[0]))
        # An abbreviation names its page and whatever the last part of the page's name names (its sibling
        # pages: "... - Supply Chain Management" and the admission page "Supply Chain Management").
        self.aliases: dict[str, list[str]] = {
            short: list(dict.fromkeys([page, *self._by_name(_PARTS.split(page)[-1])]))
            for short, page in (aliases or {}).items()
        }

    def detect(self, query: str, *, abbreviations: bool = True) -> list[str]:
        """Page names the query names, most specific (most key words matched) first, without repeats.

        A key must be matched whole, except that one of three or more distinctive words may be missing
        ("strategic design" names "Strategic Design and Entrepreneurship"). Abbreviations ("SCM") come
        after names, unless ``abbreviations`` is False.
        """
        found = self._by_name(query)
        if not abbreviations:
            return found
        for token in re.findall(r"[a-z0-9]+", query.lower()):
            for page in self.aliases.get(token, ()):
                if page not in found:
                    found.append(page)
        return found

    def residual(self, query: str, pages: Sequence[str]) -> str:
        """What the query asks of ``pages``: the query without the words naming them and function words.

        A word names the pages when it is one of their names' words, a degree word or an abbreviation of
        them ("SCM"); "how are students selected for data science" asks "how are students selected".
        Empty when nothing else is left.
        """
        naming = {w for page in pages for w in words(page)} | _STOP | self._degree_words
        naming |= {short for short, named in self.aliases.items() if set(named) & set(pages)}
        kept = [t for t in re.findall(r"[\w'-]+", query) if not set(words(t)) <= naming]
        return " ".join(kept)

    def _by_name(self, query: str) -> list[str]:
        q = set(words(query))
        hits: list[tuple[frozenset[str], tuple[str, ...]]] = []
        for key, pages in self._keys:
            hit = key & q
            if len(hit) == len(key) or (
                len(key) >= 3 and len(hit) >= len(key) - 1 and not key & self._shared
            ):
                hits.append((hit, pages))
        hits.sort(key=lambda hp: -len(hp[0]))
        found: dict[str, None] = {}
        kept: list[frozenset[str]] = []
        for hit, pages in hits:
            # A match inside a longer one adds nothing ("strategic" inside "strategic design").
            if any(hit < k for k in kept):
                continue
            kept.append(hit)
            found.update(dict.fromkeys(pages))
        return list(found)
