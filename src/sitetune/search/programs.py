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

# abbreviates/abbreviations are read from the site at index time (sitetune.siteanalysis); re-exported here.
from sitetune.sitevocab import abbreviates, abbreviations, degree_prefixes, prefix_pattern

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


__all__ = ["ProgramDetector", "abbreviates", "abbreviations", "family_labels", "words"]
