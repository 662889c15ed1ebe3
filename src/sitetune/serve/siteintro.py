"""``GET /site``: what the empty search page shows, the site's name and three example questions.

The name is the one the store's site analysis found in the pages (:class:`sitetune.sitevocab.SiteVocabulary`).
The examples come from the sections, in this order of preference:

1. A section title that names a topic in plural ("Entry requirements") and that many pages share becomes
   "What are the entry requirements?". A title reads as such a topic when it is a short phrase of words
   only, none of them a function word ("Documents to upload", "Meet the students" do not), its last word
   a plural, and its first word used after an article or possessive in the pages' text ("the entry ...",
   so that a title opening with a verb, "Join info meetings", is not taken for a noun phrase). Each word
   keeps the case it has most often in the text ("English" stays capitalised, "ENTRY" does not).
2. A section title that is itself a question ("How many programmes can I apply for?"), as written.
3. Otherwise the most shared section titles themselves, as topics to search for.

Titles ending in the same word ("entry requirements", "language requirements") give one example, so
the three cover different topics. Nothing here knows a site: every word comes from the store.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint signature at run time.

import re
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from pydantic import BaseModel

from sitetune.corpus import Chunk
from sitetune.records import section_type_of

#: How many examples the page offers.
EXAMPLES = 3
#: A topic title has at most this many words ...
MAX_TOPIC_WORDS = 4
#: ... and a question title at most this many characters (longer ones crowd the page on a phone).
MAX_QUESTION_CHARS = 80
# English function words: a title holding one is a sentence or a clause, not a topic's name.
_FUNCTION_WORDS = frozenset(
    """a an the this that these those my your our their its his her we you i it they he she me us them
    of to in on at for from with by as into onto about after before during over under between through
    and or but nor if then than so not no yes is are was were be been being am do does did can could will
    would shall should may might must have has had how what why when where who whom whose which while
    all any each every some more most other such only own same too very just also here there""".split()  # noqa: SIM905
)
# Words after which the next word is used as (part of) a noun phrase.
_DETERMINERS = r"the|a|an|your|our|their|its|his|her|my|these|those|this|that|each|every|any|all|some"
_AFTER_DETERMINER = re.compile(rf"\b(?:{_DETERMINERS})\s+([A-Za-z][A-Za-z-]*)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_TOPIC_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")
# Plurals that end in "s" (not "ss", "us", "is", nor "-ics", which names a subject, "economics").
_PLURAL = re.compile(r"[a-z]{2,}(?<!s)(?<!u)(?<!i)(?<!ic)s$")


@dataclass(frozen=True)
class _Title:
    """A section type as first written, the pages that hold it, and where it first appears."""

    text: str
    pages: frozenset[str]
    order: int


def _titles(chunks: Sequence[Chunk]) -> list[_Title]:
    """Distinct section types (case and spacing folded), most shared first, then in corpus order."""
    first: dict[str, str] = {}
    pages: dict[str, set[str]] = {}
    for chunk in chunks:
        for occurrence in chunk.occurrences:
            text = " ".join(section_type_of(occurrence.section_title).split())
            if not text:
                continue
            key = text.casefold()
            first.setdefault(key, text)
            pages.setdefault(key, set()).add(occurrence.page_name)
    titles = [_Title(first[k], frozenset(pages[k]), i) for i, k in enumerate(first)]
    return sorted(titles, key=lambda t: (-len(t.pages), t.order))


def _case_in_text(word: str, counts: Counter[str]) -> str:
    """``word`` in the case the text uses most (lower case when the text never uses it)."""
    forms = dict.fromkeys((word.lower(), word, word.capitalize()))
    return max(forms, key=lambda form: counts[form])


def topic_question(title: str, counts: Counter[str], noun_starts: frozenset[str]) -> str | None:
    """``title`` as "What are the ...?" when it reads as a plural topic (see the module docstring), else None.

    Args:
        title: A section type.
        counts: How often each word (case kept) appears in the pages' text.
        noun_starts: Lower-case words the text uses right after an article or possessive.
    """
    words = title.split()
    if not 1 <= len(words) <= MAX_TOPIC_WORDS or not all(_TOPIC_WORD.fullmatch(w) for w in words):
        return None
    lower = [w.lower() for w in words]
    if any(w in _FUNCTION_WORDS for w in lower) or not _PLURAL.search(lower[-1]):
        return None
    if lower[0] not in noun_starts:
        return None
    return "What are the " + " ".join(_case_in_text(w, counts) for w in words) + "?"


def _is_question(title: str) -> bool:
    words = title.split()
    return title.endswith("?") and len(words) >= 3 and len(title) <= MAX_QUESTION_CHARS


def example_questions(chunks: Sequence[Chunk], count: int = EXAMPLES) -> list[str]:
    """Up to ``count`` example questions (or topics) drawn from the sections of ``chunks``.

    Args:
        chunks: The store's chunks.
        count: How many to return at most.

    Returns:
        Questions in the order the page shows them (see the module docstring for how they are chosen).
    """
    titles = _titles(chunks)
    counts: Counter[str] = Counter()
    noun_starts: set[str] = set()
    for chunk in chunks:
        counts.update(_WORD.findall(chunk.text))
        noun_starts.update(m.lower() for m in _AFTER_DETERMINER.findall(chunk.text))
    starts = frozenset(noun_starts)
    shared = [t for t in titles if len(t.pages) > 1]
    candidates: list[tuple[str, str]] = []  # (example, what it is about: its last word)
    for title in shared:
        question = topic_question(title.text, counts, starts)
        if question is not None:
            candidates.append((question, title.text.split()[-1].lower()))
    for title in titles:
        if _is_question(title.text):
            candidates.append((title.text, title.text.casefold()))
    for title in shared or titles:
        if len(title.text) <= MAX_QUESTION_CHARS:
            words = title.text.split()
            topic = " ".join([_case_in_text(words[0], counts).capitalize()] +
                             [_case_in_text(w, counts) for w in words[1:]])
            candidates.append((topic, title.text.casefold()))
    return _distinct(candidates, count)


def _distinct(candidates: Iterable[tuple[str, str]], count: int) -> list[str]:
    chosen: list[str] = []
    seen_text: set[str] = set()
    seen_about: set[str] = set()
    for text, about in candidates:
        if len(chosen) == count:
            break
        if text.casefold() in seen_text or about in seen_about:
            continue
        chosen.append(text)
        seen_text.add(text.casefold())
        seen_about.add(about)
    return chosen


class SiteInfo(BaseModel):
    """What the search page shows before the first question.

    Attributes:
        name: The site's name as its pages give it ("" when they do not say).
        examples: Example questions drawn from the site's sections (clicking one asks it).
    """

    name: str
    examples: list[str]


def site_info(searcher: object) -> SiteInfo:
    """The name and examples of the site a searcher serves (empty for a searcher without a store)."""
    vocabulary = getattr(searcher, "vocabulary", None)
    reader = getattr(searcher, "reader", None)
    chunks: Sequence[Chunk] = getattr(reader, "chunks", None) or []
    return SiteInfo(name=str(getattr(vocabulary, "name", "") or ""), examples=example_questions(chunks))


def add_site_endpoint(app: FastAPI, current_searcher: Callable[[], object]) -> None:
    """Add ``GET /site`` to ``app``: :class:`SiteInfo` of the generation served, worked out once per generation.

    Args:
        app: The server's app.
        current_searcher: Returns the searcher of the generation served now (it changes on a live switch).
    """
    lock = threading.Lock()
    # The last generation's answer, held by a weak reference so an old generation can still be freed.
    last: list[tuple[Callable[[], object | None], SiteInfo]] = []

    @app.get("/site", response_model=SiteInfo, tags=["service"])
    def site() -> SiteInfo:
        """The site's name and example questions drawn from its sections, for the page's empty state."""
        searcher = current_searcher()
        with lock:
            if last and last[0][0]() is searcher:
                return last[0][1]
            info = site_info(searcher)
            try:
                last[:] = [(weakref.ref(searcher), info)]
            except TypeError:  # not weakly referable: worked out on each request
                last.clear()
        return info
