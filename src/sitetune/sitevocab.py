"""What a site calls itself and its things, derived from its pages alone.

Nothing here knows a particular site: pseudo-questions, programme detection and answer scoring read a
site's vocabulary from its records instead of from word lists fitted to one site.

- :func:`site_name`: the name the site calls itself. The strongest signal is a phrase of capitalised
  words (or an acronym) that matches the URL host ("www.harbour-business.example" -> "Harbour School of
  Business"); without a usable host (a local mirror) it is the phrase naming an institution ("University",
  "School", "College", ...) on the most pages. Page names rarely carry it (they come from h1 headings).
- :func:`degree_prefixes`: words that start many page names and look like a degree ("MSc", "BA (Hons)",
  "Master of Science in"), so "MSc in Supply Chain Management" is also called "Supply Chain Management".
- :func:`common_words`: words too common on this site to tell its pages apart (the site's own name,
  and on a site of some size, words on nearly every page).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from sitetune.corpus import Chunk
from sitetune.records import SectionRecord, section_type_of

# Nouns that name an institution or organisation; a capitalised phrase holding one can be the site's name.
INSTITUTION_NOUNS = frozenset(
    """university universities college school institute institut academy polytechnic conservatoire
    conservatory seminary foundation association society council agency museum hospital library
    company corporation""".split()  # noqa: SIM905 (a word list reads better as prose)
)
# Small words that may sit inside a name ("University of the Arts", "Faculty of Arts & Design").
_CONNECTORS = frozenset(("of", "for", "and", "&", "the", "de", "du", "la", "der", "upon", "on"))
# English function words that are capitalised only because they open a sentence or heading.
_FUNCTION_WORDS = frozenset(
    """the a an our your their its my this that these those at in on for to from with by as if when
    all each every some any both about""".split()  # noqa: SIM905
)
# Host labels that say nothing about the organisation ("www.example.ac.uk").
_HOST_NOISE = frozenset(("www", "ac", "co", "edu", "com", "org", "net", "gov", "uni", "en", "int"))
_SEGMENT = re.compile(r"[.!?:;|,()\[\]\n\"“”–—/·•]|\s-\s")
_TOKEN = re.compile(r"&|\w[\w'’-]*")
_POSSESSIVE = re.compile(r"['’]s?$")
_ACRONYM = re.compile(r"[A-Z][A-Z0-9&]{1,6}")
# A degree-shaped first word: two to four capital-led parts ("MSc", "BA", "PhD", "MSocSc", "MEng") or
# dotted ("M.Sc.", "B.A.").
_DEGREE_WORD = re.compile(r"(?:[A-Z][a-z]{0,3}){2,4}|(?:[A-Z][a-z]{0,4}\.){1,3}(?:[A-Za-z]{1,5}\.?)?")
_WORD = re.compile(r"[a-z0-9]+")
# Two letters ("US", "UK") are too ambiguous to tie an acronym to a long name.
_MIN_ACRONYM = 3
#: A degree word must start at least this many page names (a shared leading phrase at least ``+1``).
MIN_PREFIX_PAGES = 2
#: On a site with this many pages, words on nearly every page (``COMMON_PAGE_SHARE``) are common.
MIN_PAGES_FOR_SHARE = 20
COMMON_PAGE_SHARE = 0.9


@dataclass(frozen=True)
class SiteVocabulary:
    """A site's own words.

    Attributes:
        name: What the site calls itself ("" when nothing in the pages says it).
        name_forms: The name and its other forms on the pages (an acronym, the long form), most used first.
        degree_prefixes: Degree words that start page names ("MSc"), longest phrase first.
        common_words: Lower-case words that do not tell this site's pages apart.
    """

    name: str
    name_forms: tuple[str, ...]
    degree_prefixes: tuple[str, ...]
    common_words: frozenset[str]

    @classmethod
    def of(cls, records: Sequence[SectionRecord]) -> SiteVocabulary:
        """Derive the vocabulary of the site ``records`` come from."""
        forms = site_name_forms(records)
        pages = list(dict.fromkeys(r.page_name for r in records))
        return cls(
            name=forms[0] if forms else "",
            name_forms=forms,
            degree_prefixes=degree_prefixes(pages),
            common_words=common_words(records, forms),
        )

    @classmethod
    def of_chunks(cls, chunks: Iterable[Chunk]) -> SiteVocabulary:
        """The same from deduplicated chunks (an index's): every occurrence counts as a record."""
        return cls.of(records_of_chunks(chunks))


def records_of_chunks(chunks: Iterable[Chunk]) -> list[SectionRecord]:
    """One record per occurrence of each chunk."""
    return [
        SectionRecord(o.page_name, o.section_title, o.section_type, c.text, o.url)
        for c in chunks
        for o in c.occurrences
    ]


def _capitalised(token: str) -> bool:
    return token[:1].isupper() and token != "I"


def capitalised_phrases(text: str) -> list[str]:
    """Runs of capitalised words, small connectors allowed inside ("University of the Arts").

    Opening function words ("The", "Our") are dropped; a possessive "'s" is dropped from the last word.
    Single words are returned only when they are acronyms ("MIT").
    """
    out: list[str] = []
    for segment in _SEGMENT.split(text):
        run: list[str] = []
        for token in [*_TOKEN.findall(segment), ""]:
            if token and (_capitalised(token) or (run and token.lower() in _CONNECTORS)):
                run.append(token)
                continue
            while run and (run[0].lower() in _FUNCTION_WORDS or run[0].lower() in _CONNECTORS):
                run.pop(0)
            while run and run[-1].lower() in _CONNECTORS:
                run.pop()
            if run:
                run[-1] = _POSSESSIVE.sub("", run[-1]) or run[-1]
                if len(run) > 1 or _ACRONYM.fullmatch(run[0]):
                    out.append(" ".join(run))
            run = []
    return out


def _initials(phrase: str) -> str:
    return "".join(w[0] for w in phrase.split() if _capitalised(w) and w.lower() not in _CONNECTORS)


def host_tokens(urls: Iterable[str]) -> tuple[str, ...]:
    """Name-like words of the most common URL host ("www.harbour-business.example" -> harbour, business).

    IP addresses, ``localhost``, the top-level domain and labels such as "www" or "ac" say nothing and
    are left out; a local mirror therefore has none.
    """
    hosts = Counter(urlsplit(u).hostname or "" for u in urls)
    if not hosts:
        return ()
    host = hosts.most_common(1)[0][0]
    try:
        ipaddress.ip_address(host)
        return ()
    except ValueError:
        pass
    labels = host.split(".")[:-1] if "." in host else []
    return tuple(t for label in labels if label not in _HOST_NOISE for t in label.split("-") if len(t) >= 2)


def _matches_host(phrase: str, host: Sequence[str]) -> bool:
    if not host:
        return False
    joined = "".join(host)
    if phrase.lower() == joined or _initials(phrase).lower() == joined:
        return True
    words = [w.lower() for w in phrase.split()]
    return all(len(h) >= 3 and any(w.startswith(h) for w in words) for h in host)


def _has_institution_noun(phrase: str) -> bool:
    return any(_POSSESSIVE.sub("", w.lower()) in INSTITUTION_NOUNS for w in phrase.split())


def phrase_pages(records: Sequence[SectionRecord]) -> Counter[str]:
    """On how many pages each capitalised phrase appears (page name, headings and texts)."""
    per_page: dict[str, set[str]] = defaultdict(set)
    for r in records:
        found = per_page[r.page_name]
        for text in (r.page_name, r.section_title, r.text):
            found.update(_phrases_cached(text))
    counts: Counter[str] = Counter()
    for found in per_page.values():
        counts.update(found)
    return counts


@lru_cache(maxsize=4096)
def _phrases_cached(text: str) -> tuple[str, ...]:
    return tuple(capitalised_phrases(text))


def site_name_forms(records: Sequence[SectionRecord], *, use_host: bool = True) -> tuple[str, ...]:
    """The site's name and its other forms (acronym or long form), most used first; () when unknown.

    Args:
        records: Every record of the site.
        use_host: Whether the URL host may decide (off to measure the text-only rule).
    """
    if not records:
        return ()
    counts = phrase_pages(records)
    n_pages = len({r.page_name for r in records})
    min_pages = 2 if n_pages >= 4 else 1
    candidates = {p: n for p, n in counts.items() if n >= min_pages}
    host = host_tokens(r.url for r in records) if use_host else ()
    by_host = [p for p in candidates if _matches_host(p, host)]
    if by_host:
        pool = {p: candidates[p] for p in by_host}
    else:
        # A name is often written as its acronym on most pages and in full on a few: count both.
        pool = {}
        for p, n in candidates.items():
            if len(p.split()) > 1 and _has_institution_noun(p):
                acronym = _initials(p)
                total = n + (candidates.get(acronym, 0) if len(acronym) >= _MIN_ACRONYM else 0)
                if total >= max(min_pages, 0.1 * n_pages):
                    pool[p] = total
    if not pool:
        return (" ".join(t.capitalize() for t in host),) if host else ()
    best = max(pool, key=lambda p: (pool[p], len(p.split())))
    # The same name in its other form: the acronym of a long name, or the long name of an acronym.
    initials = best if _ACRONYM.fullmatch(best) else _initials(best)
    if len(initials) < _MIN_ACRONYM:
        return (best,)
    others = [
        p for p in candidates
        if p != best and (p == initials or (len(p.split()) > 1 and _initials(p) == initials))
    ]
    forms = [best, *sorted(others, key=lambda p: -candidates[p])[:1]]
    return tuple(sorted(forms, key=lambda p: -candidates[p]))


def site_name(records: Sequence[SectionRecord]) -> str:
    """What the site calls itself ("" when its pages do not say); see :func:`site_name_forms`."""
    forms = site_name_forms(records)
    return forms[0] if forms else ""


def degree_prefixes(page_names: Iterable[str]) -> tuple[str, ...]:
    """Degree words that start page names ("MSc", "BA (Hons)", "Master of Science in"), longest first.

    A degree-shaped first word (two to four capital-led parts like "MSc", or dotted like "M.Sc.") that
    starts at least :data:`MIN_PREFIX_PAGES` names counts, with a following parenthetical ("(Hons)")
    when most of its names have one; so does any leading phrase of up to four words ending in "in" or
    "of" that starts one name more than that ("Master of Science in").
    """
    names = [" ".join(p.split()) for p in dict.fromkeys(page_names)]
    first: Counter[str] = Counter()
    with_paren: Counter[str] = Counter()
    leading: Counter[str] = Counter()
    for name in names:
        tokens = name.split()
        if len(tokens) < 2:
            continue
        if _DEGREE_WORD.fullmatch(tokens[0]):
            first[tokens[0]] += 1
            if tokens[1].startswith("(") and tokens[1].endswith(")"):
                with_paren[f"{tokens[0]} {tokens[1]}"] += 1
        for n in range(2, min(5, len(tokens))):
            if tokens[n - 1].lower() in ("in", "of"):
                leading[" ".join(tokens[:n])] += 1
    out = [w for w, n in first.items() if n >= MIN_PREFIX_PAGES]
    out += [p for p, n in with_paren.items() if 2 * n > first[p.split()[0]] and first[p.split()[0]] >= MIN_PREFIX_PAGES]
    out += [
        p for p, n in leading.items()
        if n > MIN_PREFIX_PAGES and p.split()[0] not in first and p.split()[0].lower() not in _FUNCTION_WORDS
    ]
    return tuple(sorted(set(out), key=lambda p: (-len(p), p)))


def prefix_pattern(prefixes: Sequence[str]) -> re.Pattern[str] | None:
    """A regex matching a leading degree prefix and a following "in"/"of" (``None`` without prefixes)."""
    if not prefixes:
        return None
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(rf"^(?:{alternatives})(?:\s*\([^)]*\))?\s+(?:(?:in|of)\s+)?", re.IGNORECASE)


def strip_degree_prefix(name: str, prefixes: Sequence[str]) -> str:
    """``name`` without a leading degree prefix ("MSc in Digital Business" -> "Digital Business")."""
    pattern = prefix_pattern(prefixes)
    name = " ".join(name.split())
    if pattern is None:
        return name
    stripped = pattern.sub("", name, count=1).strip()
    return stripped or name


def entity_names(page_name: str, prefixes: Sequence[str] = ()) -> list[str]:
    """Ways a visitor names what a page is about, without repeats.

    The full name, the part after " - ", the name without its degree prefix ("MSc in Digital Business" ->
    "Digital Business").
    """
    full = " ".join(page_name.split())
    names = [full]
    if " - " in full:
        names.append(full.split(" - ")[-1].strip())
    names.append(strip_degree_prefix(full, prefixes))
    return [n for n in dict.fromkeys(names) if n]


def starts_with_degree(page_name: str, prefixes: Sequence[str]) -> bool:
    """Whether ``page_name`` opens with one of the site's degree prefixes."""
    pattern = prefix_pattern(prefixes)
    return bool(pattern and pattern.match(" ".join(page_name.split())))


def words_of(text: str) -> list[str]:
    """Lower-case ASCII word tokens."""
    return _WORD.findall(text.lower())


def common_words(records: Sequence[SectionRecord], name_forms: Sequence[str] = ()) -> frozenset[str]:
    """Words that do not tell this site's pages apart.

    The words of the site's name (every page is the site's, so "at <site>" in a question is no
    evidence), and on a site of at least :data:`MIN_PAGES_FOR_SHARE` pages the words found on at least
    :data:`COMMON_PAGE_SHARE` of its pages (a small site has too few pages to tell).
    """
    out = {w for form in name_forms for w in words_of(form) if w not in _CONNECTORS}
    pages: dict[str, set[str]] = defaultdict(set)
    for r in records:
        pages[r.page_name].update(words_of(r.text))
    if len(pages) >= MIN_PAGES_FOR_SHARE:
        frequency: Counter[str] = Counter()
        for found in pages.values():
            frequency.update(found)
        out |= {w for w, n in frequency.items() if n >= COMMON_PAGE_SHARE * len(pages)}
    return frozenset(out)


#: A section type shared by at least this many pages is part of the site's page template ...
TEMPLATE_SHARED_PAGES = 4
#: ... and a page holding at least this many such types is built on the template (a programme page).
TEMPLATE_MIN_SECTIONS = 4


def template_pages(sections: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Pages built on a section template the site repeats: ``{page}`` from ``(page, section title)`` pairs.

    Sites describe their programmes, courses or products on pages with the same sections ("Entry
    requirements", "Selection criteria", "Course overview"); a question naming such a page asks for one
    of those sections. A page is a template page when at least ``TEMPLATE_MIN_SECTIONS`` of its section
    types (titles without "(Part N)") are each on at least ``TEMPLATE_SHARED_PAGES`` pages. Topic pages
    ("Scholarships", "Ukraine") and pages sharing only a footer section ("Contact") are not.
    """
    types: dict[str, set[str]] = defaultdict(set)
    for page, title in sections:
        kind = " ".join(section_type_of(title).lower().split())
        if kind:
            types[page].add(kind)
    pages_with = Counter(kind for kinds in types.values() for kind in kinds)
    return frozenset(
        page for page, kinds in types.items()
        if sum(pages_with[k] >= TEMPLATE_SHARED_PAGES for k in kinds) >= TEMPLATE_MIN_SECTIONS
    )


#: An abbreviation names a page when at least this share of the sections using it are on that page ...
ABBREVIATION_SHARE = 0.4
#: ... and it is used in at least this many sections.
ABBREVIATION_USES = 3
_ABBREVIATION = re.compile(r"\b[A-Z]{2,6}\b")


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
