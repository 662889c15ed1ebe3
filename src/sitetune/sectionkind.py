"""What kind of section a chunk is: one that holds information, or a signpost that points to it.

A site's introductions ("on this page you can find ..."), teasers ("find out how to ... / Read more"), calls
to action and slogans name a topic in the words a question uses, so they rank high, but they hold no fact. The
signal here tells them from sections that answer, with nothing site-specific in the code: every feature is
measured against the site itself (which phrases recur across its pages, which words are its titles', how
dense its sections are in numbers, names and list items), and a small logistic model combines them. The
model's weights were fitted on hand-labelled sections of three sites (``sitetune/data/labels``) and are
checked site by site, leaving each site out of the fit (``benchmarks/section_kinds.py``). Testimonials (a
student's own story) are told apart by how much of their statements speak in the first person singular.

:func:`section_signals` runs at index time over a store's chunks; the store keeps the result beside them
(``signals.json``) and search reads it, so nothing here runs when a store is opened.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sitetune.corpus import Chunk

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_NUMBER = re.compile(r"\d")
_LIST_LINE = re.compile(r"^\s*(?:[-*•·–]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")
#: English first-person singular forms, as a speaker telling their own story writes them. "I" counts only
#: capitalised: a lower-case "i" is a word of other languages ("in" in several).
_FIRST_PERSON_I = frozenset({"I", "I'm", "I’m", "I've", "I’ve", "I'd", "I’d", "I'll", "I’ll"})
_FIRST_PERSON_OTHER = frozenset({"me", "my", "myself"})
#: A section whose statements are at least this share first-person singular words tells someone's own story
#: (chosen on the hand labels of ``sitetune/data/labels``; ``benchmarks/section_kinds.py`` reports it).
TESTIMONIAL_SHARE = 0.02
#: Word n-gram length of the site's stock phrases ("find out more", "on this page").
STOCK_N = 3


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def first_person_share(text: str) -> float:
    """Share of the words of a text's statements that are first-person singular ("I", "my", "me").

    Questions are left out: an FAQ asks "Can I apply ...?" and then answers it; a testimonial speaks of
    itself in its statements.
    """
    words = [w for sentence in _SENTENCE_END.split(text) if not sentence.rstrip().endswith("?")
             for w in _WORD.findall(sentence)]
    return sum(w in _FIRST_PERSON_I or w.lower() in _FIRST_PERSON_OTHER for w in words) / max(len(words), 1)


def _ngrams(words: Sequence[str], n: int = STOCK_N) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass(frozen=True)
class SectionFeatures:
    """Measurements of one chunk against its site (all site-relative, none site-specific).

    Attributes:
        words: Number of words.
        lines: Number of non-blank lines.
        digit_share: Share of words holding a digit (dates, amounts, scores, phone numbers).
        name_share: Share of words capitalised inside a sentence that are rare on the site (named
            things: tests, offices, places), the site's own name and its common words excluded.
        list_lines: Share of lines that are list items.
        short_last_line: The text ends in a short line without a full stop (a link's label: "Read more").
        title_share: Share of the text's distinct words found in its page names and section titles.
        stock_share: Share of the text's word trigrams that recur on many of the site's pages.
        rare_share: Share of the text's distinct words that are rare on the site (specific content).
        intro: The section's title is its page's name (a page's opening section).
        pages: Number of pages the text appears on.
    """

    words: int
    lines: int
    digit_share: float
    name_share: float
    list_lines: float
    short_last_line: bool
    title_share: float
    stock_share: float
    rare_share: float
    intro: bool
    pages: int

    def vector(self) -> list[float]:
        """The features as the logistic model reads them (order of :data:`FEATURE_NAMES`)."""
        return [
            math.log1p(self.words),
            math.log1p(self.lines),
            self.digit_share,
            self.name_share,
            self.list_lines,
            float(self.short_last_line),
            self.title_share,
            self.stock_share,
            self.rare_share,
            float(self.intro),
            math.log(self.pages),
        ]


FEATURE_NAMES = (
    "log words", "log lines", "digit share", "name share", "list lines", "short last line", "title share",
    "stock share", "rare share", "intro", "log pages",
)


def section_features(chunks: Sequence[Chunk]) -> list[SectionFeatures]:
    """Measure every chunk against the whole site (the chunks of one store)."""
    page_count = max(len({o.page_name for c in chunks for o in c.occurrences}), 1)
    words_of = [_words(c.text) for c in chunks]
    # On how many pages each trigram and each word occurs (a page counted once however often it repeats).
    gram_pages: Counter[tuple[str, ...]] = Counter()
    word_pages: Counter[str] = Counter()
    page_grams: dict[str, set[tuple[str, ...]]] = {}
    page_words: dict[str, set[str]] = {}
    for chunk, words in zip(chunks, words_of, strict=True):
        grams, vocab = set(_ngrams(words)), set(words)
        for page in chunk.pages:
            page_grams.setdefault(page, set()).update(grams)
            page_words.setdefault(page, set()).update(vocab)
    for grams in page_grams.values():
        gram_pages.update(grams)
    for vocab in page_words.values():
        word_pages.update(vocab)
    # A stock phrase recurs on several pages but is not the site's boilerplate of every page.
    stock_floor = max(3, math.ceil(0.03 * page_count))
    rare_ceiling = max(2, math.ceil(0.02 * page_count))
    out = []
    for chunk, words in zip(chunks, words_of, strict=True):
        titles = {w for o in chunk.occurrences for w in _words(f"{o.page_name} {o.section_title}")}
        distinct = set(words) or {""}
        lines = [line for line in chunk.text.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        trigrams = _ngrams(words)
        capitalised = [
            w for sentence in re.split(r"(?<=[.!?:])\s+|\n", chunk.text)
            for w in _WORD.findall(sentence)[1:]
            if w[:1].isupper() and word_pages[w.lower()] <= rare_ceiling
        ]
        out.append(SectionFeatures(
            words=len(words),
            lines=len(lines),
            digit_share=sum(bool(_NUMBER.search(w)) for w in words) / max(len(words), 1),
            name_share=len(capitalised) / max(len(words), 1),
            list_lines=sum(bool(_LIST_LINE.match(line)) for line in lines) / max(len(lines), 1),
            short_last_line=bool(last) and len(_words(last)) <= 4 and not last.endswith((".", ":", ";")),
            title_share=len(distinct & titles) / len(distinct),
            stock_share=sum(gram_pages[g] >= stock_floor for g in trigrams) / max(len(trigrams), 1),
            rare_share=sum(word_pages[w] <= rare_ceiling for w in distinct) / len(distinct),
            intro=any(" ".join(_words(o.section_title)) == " ".join(_words(o.page_name)) for o in chunk.occurrences),
            pages=len(chunk.pages),
        ))
    return out


#: Logistic weights of :meth:`SectionFeatures.vector` (then the intercept) for "this section is a signpost".
#: Fitted on the hand-labelled sections of ``sitetune/data/labels`` by ``benchmarks/section_kinds.py``.
SIGNPOST_WEIGHTS: tuple[float, ...] = (
    -1.069, 0.449, -1.236, -0.603, -2.037, 1.479, 0.113, -0.571, -1.743, 1.416, -0.111, 3.418,
)
#: Chunks beyond this many get no signals (the site-wide phrase counts would not fit in memory).
MAX_CHUNKS = 200_000
#: A name naming a page is ignored when it occurs on more than this share of the site's pages (the site's
#: own name, on every page, refers to nothing in particular).
MAX_REFERENCE_SHARE = 0.5
SIGNALS_VERSION = 2


class OutdatedSignals(ValueError):
    """``signals.json`` of an earlier version: the store computes the signals again when it opens."""


def signpost_probability(features: SectionFeatures, weights: Sequence[float] = SIGNPOST_WEIGHTS) -> float:
    """The logistic model's probability that a section is a signpost."""
    z = weights[-1] + sum(w * x for w, x in zip(weights[:-1], features.vector(), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class SectionSignals:
    """Per-chunk signals of one store, in row order, computed at index time.

    Attributes:
        signpost: Probability that the chunk is a signpost (introduction, teaser, menu, call to action).
        specific: The chunk appears only on pages built on the site's section template (one programme's
            page): it answers for that page, not for the whole site.
        refers: Pages the chunk's text names other than its own ("see English level A"), for two-step answers.
        testimonial: The chunk tells someone's own story (a student's or graduate's quote): it speaks about
            the topic without answering for everyone (:func:`first_person_share`).
    """

    signpost: tuple[float, ...]
    specific: tuple[bool, ...]
    refers: tuple[tuple[str, ...], ...]
    testimonial: tuple[bool, ...]

    def to_json(self) -> str:
        """The ``signals.json`` of a store generation."""
        import json

        return json.dumps({"version": SIGNALS_VERSION, "signpost": [round(p, 4) for p in self.signpost],
                           "specific": list(self.specific), "refers": [list(r) for r in self.refers],
                           "testimonial": list(self.testimonial)})

    @classmethod
    def from_json(cls, text: str, count: int) -> SectionSignals:
        """Read ``signals.json``; ``count`` is the generation's chunk count.

        Raises:
            OutdatedSignals: An earlier version (compute them again from the chunks).
            ValueError: Another version, or not one value per chunk.
        """
        import json

        data = json.loads(text)
        version = data.get("version")
        if isinstance(version, int) and 0 < version < SIGNALS_VERSION:
            raise OutdatedSignals(f"signals version {version}, this sitetune writes {SIGNALS_VERSION}")
        if version != SIGNALS_VERSION:
            raise ValueError(f"signals version {version!r}, expected {SIGNALS_VERSION}")
        signals = cls(tuple(float(p) for p in data["signpost"]), tuple(bool(s) for s in data["specific"]),
                      tuple(tuple(str(p) for p in r) for r in data["refers"]),
                      tuple(bool(t) for t in data["testimonial"]))
        lengths = {len(signals.signpost), len(signals.specific), len(signals.refers), len(signals.testimonial)}
        if lengths != {count}:
            raise ValueError(f"signals for {len(signals.signpost)} chunks, the generation has {count}")
        return signals

    @classmethod
    def neutral(cls, count: int) -> SectionSignals:
        """No signal: every chunk treated alike (stores too large to analyse)."""
        return cls((0.0,) * count, (False,) * count, ((),) * count, (False,) * count)


def page_references(chunks: Sequence[Chunk]) -> list[tuple[str, ...]]:
    """For each chunk, the other pages of the site its text names.

    A page is named by its name or, for a name of the form "Topic - Section of the site", by "Topic", of two
    words or more: a one-word name ("Housing", "Deadlines") is also an ordinary word. Names found on more
    than :data:`MAX_REFERENCE_SHARE` of the pages are dropped: what the site says everywhere points nowhere.
    """
    pages = list(dict.fromkeys(o.page_name for c in chunks for o in c.occurrences))
    forms: dict[str, set[str]] = {}
    for page in pages:
        for form in {page, page.split(" - ")[0]}:
            if len(_words(form)) >= 2:
                forms.setdefault(" ".join(_words(form)), set()).add(page)
    texts = [" " + " ".join(_words(c.text)) + " " for c in chunks]
    found: list[list[str]] = [[] for _ in chunks]
    limit = max(2, MAX_REFERENCE_SHARE * len(pages))
    for form, named in forms.items():
        hits = [i for i, text in enumerate(texts) if f" {form} " in text]
        if len({p for i in hits for p in chunks[i].pages}) > limit:
            continue
        for i in hits:
            found[i] += [p for p in sorted(named) if p not in chunks[i].pages]
    return [tuple(dict.fromkeys(f)) for f in found]


def section_signals(chunks: Sequence[Chunk]) -> SectionSignals:
    """Signpost probability, template scope, page references and testimonials of every chunk of one store."""
    from sitetune.sitevocab import template_pages

    if len(chunks) > MAX_CHUNKS:
        return SectionSignals.neutral(len(chunks))
    features = section_features(chunks)
    templated = template_pages((o.page_name, o.section_title) for c in chunks for o in c.occurrences)
    return SectionSignals(
        signpost=tuple(signpost_probability(f) for f in features),
        specific=tuple(bool(templated) and all(p in templated for p in c.pages) for c in chunks),
        refers=tuple(page_references(chunks)),
        testimonial=tuple(first_person_share(c.text) >= TESTIMONIAL_SHARE for c in chunks),
    )
