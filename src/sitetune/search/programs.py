"""Programme detection: which pages a query names ("Supply Chain Management", "finance and investments").

Each page name yields a few name variants (the whole name, the part after " - ", the name without its
degree prefix); a variant's *key words* are its words minus degree words and stop words. A query names a
page when it contains every key word of one of its variants. Variants shared by many pages ("MSc in
Economics and Business Administration") name none, and single common words ("Graduate") are ignored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

_STOP = frozenset(
    (
        "a",
        "an",
        "and",
        "the",
        "of",
        "in",
        "on",
        "for",
        "to",
        "with",
        "at",
        "by",
        "or",
        "msc",
        "msocsc",
        "ma",
        "mba",
        "cand",
        "merc",
        "pol",
        "oecon",
        "master",
        "masters",
        "programme",
        "program",
        "degree",
    )
)
_PREFIX = re.compile(r"^(?:msc|msocsc|ma|cand\.merc\.?\(pol\.?\)\s*/\s*msc)\s+(?:in\s+)?", re.IGNORECASE)
#: A variant naming more pages than this is a family name, not a programme.
MAX_PAGES_PER_VARIANT = 3
#: Words of degree families ("MSc in Economics and Business Administration - ...", "MSc in Social
#: Sciences - ..."): never distinctive, however few pages a small site has.
FAMILY_WORDS = frozenset(("business", "administration", "economic", "social", "science", "management"))
#: A word in this many page names is shared, not distinctive.
SHARED_WORD_PAGES = 5


def words(text: str) -> list[str]:
    """Lower-case word tokens with '&' read as 'and' and a plural 's' dropped from longer words."""
    tokens = re.findall(r"[a-z0-9æøåéèêüöä]+", text.lower().replace("&", " and "))
    return [t[:-1] if len(t) > 4 and t.endswith("s") and not t.endswith("ss") else t for t in tokens]


def _variants(page: str) -> set[str]:
    name = re.sub(r"\([^)]*\)", " ", page)
    out = {name, _PREFIX.sub("", name.strip())}
    parts = [p for p in re.split(r"\s+-\s+|\s*/\s*|:\s+", name) if p.strip()]
    if len(parts) > 1:
        out.add(parts[-1])
        out.update(_PREFIX.sub("", p.strip()) for p in parts)
    return {v.strip() for v in out if v.strip()}


class ProgramDetector:
    """Finds the pages a query names.

    Args:
        pages: Every page name of the index.
        min_single_word: Shortest key word accepted when a variant has only one.
        common_words: Words too common in the corpus to name a page alone (e.g. "graduate").

    Use :meth:`detect` on a query; it returns page names, most specific match first.
    """

    def __init__(
        self, pages: Sequence[str], *, min_single_word: int = 4, common_words: Iterable[str] = ()
    ) -> None:
        common = {w for c in common_words for w in words(c)}
        # Words in many page names ("business", "administration") do not tell programmes apart; a word
        # in at most two names (a programme's page and its overview page) can name it alone.
        frequency: dict[str, int] = defaultdict(int)
        for page in set(pages):
            for w in set(words(page)) - _STOP:
                frequency[w] += 1
        shared = {w for w, n in frequency.items() if n >= SHARED_WORD_PAGES} | FAMILY_WORDS
        unique = {w for w, n in frequency.items() if n <= 2 and w not in common}
        self._shared = shared
        by_key: dict[frozenset[str], set[str]] = defaultdict(set)
        for page in pages:
            acronyms = {w.lower() for w in re.findall(r"\b[A-Z]{3,}\b", page)}
            for variant in _variants(page):
                full = frozenset(w for w in words(variant) if w not in _STOP)
                for key in {full, full - shared}:
                    if len(key) == 1:
                        (word,) = key
                        if not (word in acronyms or (word in unique and len(word) >= min_single_word)):
                            continue
                    if key and not key <= FAMILY_WORDS:  # a degree family alone names no programme
                        by_key[key].add(page)
        self._keys = [(key, tuple(sorted(p))) for key, p in by_key.items() if len(p) <= MAX_PAGES_PER_VARIANT]
        # Longer keys are more specific: "finance and strategic management" before "finance".
        self._keys.sort(key=lambda kp: -len(kp[0]))

    def detect(self, query: str) -> list[str]:
        """Page names the query names, most specific (most key words matched) first, without repeats.

        A key must be matched whole, except that one of three or more distinctive words may be missing
        ("strategic design" names "Strategic Design and Entrepreneurship").
        """
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
