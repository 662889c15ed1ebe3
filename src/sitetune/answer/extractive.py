"""Extractive answers: the pieces of the top sections that best match the question, quoted with their structure.

Nothing is generated: every line of an answer is copied from a retrieved section. The pieces are the units
of :mod:`sitetune.answer.passages` (sentences, whole list items under their lead-in, rows under their
label), so a list is quoted as a list and no list item is cut. When the best piece scores below
:attr:`AnswerConfig.min_score` the answer says the information was not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sitetune.answer.passages import Unit, split_units
from sitetune.answer.types import NOT_FOUND_TEXT, Answer, AnswerBlock, Citation
from sitetune.config import AnswerConfig
from sitetune.search.sentence_stage import SentenceVectors, SentenceView
from sitetune.search.types import Query, SearchHit

if TYPE_CHECKING:
    from sitetune.encode import Encoder

_WORD = re.compile(r"[a-z0-9]+")
# Question words and fillers that say nothing about the topic; matching them is no evidence. The site's own
# name and words on nearly all of its pages are no evidence either: SentenceScorer adds them per site
# (``common_words``, from :class:`sitetune.sitevocab.SiteVocabulary`).
_STOPWORDS = frozenset(
    """a an the and or of to in on at for from by with about as is are was were be been being do does did
    can could should would will shall may might must i me my we our you your it its this that these those
    there here what which who whom whose when where why how if then than so not no yes any all some
    into out up down over under more most much many such only also just have has had get got""".split()  # noqa: SIM905 (a word list reads better as prose)
)


def _stem() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class SentenceScorer:
    """Scores sentences of retrieved sections against a question; sentence vectors are cached.

    The cache is keyed by the formatted sentence, so a section seen by an earlier question costs nothing:
    on a site of a few thousand sections the whole cache stays a few MB. Pass the searcher's cache
    (``Searcher.sentences``) so search's second stage and the answer encode each sentence once.

    Args:
        encoder: The encoder queries are embedded with (the search model).
        config: Weights and threshold.
        max_cache: Sentences kept when the scorer makes its own cache.
        common_words: Words of this site that are no evidence either (its name, words on nearly every page).
        cache: A sentence-vector cache to share (``None``: a new one).
    """

    def __init__(
        self,
        encoder: Encoder,
        config: AnswerConfig | None = None,
        *,
        max_cache: int = 100_000,
        common_words: Iterable[str] = (),
        cache: SentenceVectors | None = None,
    ) -> None:
        self.encoder = encoder
        self.config = config or AnswerConfig()
        self.cache = cache if cache is not None else SentenceVectors(encoder, max_cache=max_cache)
        self._stemmer = _stem()
        self._stopwords = _STOPWORDS | {w.lower() for w in common_words}

    def _terms(self, text: str) -> set[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self._stopwords]
        return set(self._stemmer.stemWords(words))

    def lexical_overlap(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """Share of the question's content words (stemmed) present in each sentence, 0..1."""
        q = self._terms(question)
        if not q:
            return np.zeros(len(sentences), dtype=np.float32)
        return np.asarray([len(q & self._terms(s)) / len(q) for s in sentences], dtype=np.float32)

    def sentence_vectors(self, documents: Sequence[str]) -> np.ndarray:
        """Unit vectors of already-formatted sentence documents, encoding only the ones not cached."""
        return self.cache.vectors(documents)

    def score(
        self, question: str, sentences: Sequence[SentenceView], vector: np.ndarray | None = None
    ) -> np.ndarray:
        """Cosine of each sentence with the question plus ``lexical_weight`` times the word overlap.

        ``vector``: the question's query vector when search already has it (:attr:`Query.vector`).
        """
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        info = self.encoder.info
        query = self.encoder.encode([info.query(question)])[0] if vector is None else vector
        vectors = self.sentence_vectors([info.document(s) for s in sentences])
        cosine = vectors @ query
        if self.config.lexical_weight:
            cosine = cosine + self.config.lexical_weight * self.lexical_overlap(
                question, [s.text for s in sentences]
            )
        return np.asarray(cosine, dtype=np.float32)

    def unit_views(self, hit: SearchHit) -> list[tuple[Unit, SentenceView]]:
        """The quotable units of a section, each dressed as a section for the model's document template."""
        return [(u, SentenceView(hit.page_name, hit.section_title, u.scored)) for u in split_units(hit.text)]

    def warm(self, sections: Iterable[Any], batch: int = 256) -> int:
        """Encode every unit of ``sections`` (objects with page_name, section_title, text) ahead of time.

        Returns:
            Units encoded or found cached.
        """
        info = self.encoder.info
        documents = [info.document(view) for s in sections for _, view in self.unit_views(s)]
        for start in range(0, len(documents), batch):
            self.sentence_vectors(documents[start : start + batch])
        return len(documents)


def not_found(hits: Sequence[SearchHit], score: float = 0.0, mode: str = "extractive") -> Answer:
    """The explicit "not found in the pages" answer; the hits stay as the closest sections."""
    return Answer(text=NOT_FOUND_TEXT, citations=[], found=False, hits=list(hits), score=score, mode=mode)


def _repeat_key(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def quote_blocks(units: Sequence[Unit]) -> list[AnswerBlock]:
    """The chosen units of one section as answer blocks, in reading order, structure kept.

    Sentences of one paragraph make one text block; items of one list make one list block under one
    copy of the list's lead-in (a text block); rows of one run make one rows block under their label.
    The last block carries no citation here (the caller numbers it).
    """
    blocks: list[AnswerBlock] = []
    last_line = ""
    for unit in sorted(units, key=lambda u: u.order):
        kind = {"sentence": "text", "item": "list", "row": "rows"}[unit.kind]
        if unit.lead and _repeat_key(unit.lead) != _repeat_key(last_line):
            same_lead = blocks and blocks[-1].kind == kind and blocks[-1].block == unit.block
            if not same_lead:
                blocks.append(AnswerBlock("text", (unit.lead,), block=-1 - unit.block))
        previous = blocks[-1] if blocks else None
        if previous is not None and previous.kind == kind and previous.block == unit.block:
            blocks[-1] = previous.extended(unit.text)
        else:
            blocks.append(AnswerBlock(kind, (unit.text,), block=unit.block))
        last_line = unit.text
    return blocks


def render(blocks: Sequence[AnswerBlock]) -> str:
    """The answer's plain text: a text block's sentences on one line, one line per list item or row,
    ``[n]`` after a block that closes a citation."""
    lines = []
    for block in blocks:
        body = " ".join(block.lines) if block.kind == "text" else "\n".join(block.lines)
        lines.append(f"{body} [{block.n}]" if block.n else body)
    return "\n".join(lines)


def extractive_answer(
    question: str | Query,
    hits: Sequence[SearchHit],
    scorer: SentenceScorer,
    first_hits: int = 1,
) -> Answer:
    """Answer ``question`` by quoting the best-matching units of the top ``hits``, structure kept.

    Every unit of the top ``sections`` sections (:func:`sitetune.answer.passages.split_units`) gets the
    scorer's score (its evidence). When the best evidence is below ``min_score`` the answer is "not
    found". Otherwise units are ranked by evidence plus ``top_hit_bonus`` for the units of search's first
    section, and the best unit's section is quoted first: its units within ``margin`` of the best. Another
    section is quoted only for a unit within ``second_margin`` of the best that says something not already
    quoted; at most ``max_sentences`` units in all, none ranked below ``min_score``. Each section's units are
    quoted in reading order as blocks (a list stays a list under its lead-in, a row stays a row under its
    label) ending with the section's ``[n]`` citation.

    Args:
        question: The user's question: search's :class:`~sitetune.search.Query` (its corrected text and
            vector are used, nothing is encoded again) or a string.
        hits: Search results, best first.
        scorer: Sentence scorer holding the encoder and :class:`AnswerConfig`.
        first_hits: How many of the first hits are search's first result: 2 when the first section refers to
            another page for the detail and ``hits[1]`` is that page's section (a two-step answer: when the
            first section is quoted first, that page's best piece is quoted and cited second).

    Returns:
        The answer; ``score`` is the best unit's evidence; ``found`` is False (and the text says "not
        found in the pages") when it is below ``min_score`` or there is nothing to read.
    """
    config = scorer.config
    top = list(hits[: config.sections])
    units: list[Unit] = []
    views: list[SentenceView] = []
    owner: list[int] = []  # index into top
    for i, hit in enumerate(top):
        for unit, view in scorer.unit_views(hit):
            units.append(unit)
            views.append(view)
            owner.append(i)
    if not views:
        return not_found(hits)
    if isinstance(question, str):
        evidence = scorer.score(question, views)
    else:
        evidence = scorer.score(question.read_as, views, question.vector)
    found_score = float(evidence.max())
    if found_score < config.min_score:
        return not_found(hits, found_score)

    # Search's first section is its best guess: its units (and those of the page it sends the reader to) get
    # a bonus in the choice of what to quote.
    ranked = evidence + config.top_hit_bonus * (np.asarray(owner) < first_hits)
    order = [int(j) for j in np.argsort(-ranked, kind="stable")]
    best = float(ranked[order[0]])
    first_section = owner[order[0]]
    chosen: list[int] = []
    seen: set[str] = set()
    for j in order:
        if len(chosen) >= config.max_sentences:
            break
        same = owner[j] == first_section or (owner[j] < first_hits and first_section < first_hits)
        margin = config.margin if same else config.second_margin
        if ranked[j] < max(config.min_score, best - margin):
            continue
        key = _repeat_key(units[j].text)
        if key in seen:  # boilerplate repeated across sections
            continue
        seen.add(key)
        chosen.append(j)
    if first_hits > 1 and owner[chosen[0]] == 0 and all(owner[j] != 1 for j in chosen):
        # A two-step answer: the first section names the page that holds the detail, so that page's best
        # piece is quoted after it, whatever its own score (the first section's words are the question's).
        detail = max((j for j in range(len(units)) if owner[j] == 1), key=lambda j: evidence[j], default=None)
        if detail is not None:
            chosen = [*chosen[: config.max_sentences - 1], detail]

    # Group by section: sections ordered by their best chosen unit, units in reading order.
    groups: dict[int, list[Unit]] = {}
    for j in chosen:
        groups.setdefault(owner[j], []).append(units[j])
    citations: list[Citation] = []
    blocks: list[AnswerBlock] = []
    for n, (hit_index, members) in enumerate(groups.items(), start=1):
        citations.append(Citation.of(n, top[hit_index]))
        section_blocks = quote_blocks(members)
        section_blocks[-1] = section_blocks[-1].cited(n)
        blocks.extend(section_blocks)
    return Answer(text=render(blocks), citations=citations, found=True, hits=list(hits), score=found_score,
                  blocks=blocks)
