"""Extractive answers: the sentences of the top sections that best match the question, each cited.

Nothing is generated: every sentence in an answer is copied from a retrieved section, and when the best
sentence scores below :attr:`AnswerConfig.min_score` the answer says the information was not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sitetune.answer.types import NOT_FOUND_TEXT, Answer, Citation
from sitetune.config import AnswerConfig
from sitetune.search.sentence_stage import SentenceVectors, SentenceView
from sitetune.search.types import SearchHit
from sitetune.sentences import split_sentences

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

    def score(self, question: str, sentences: Sequence[SentenceView]) -> np.ndarray:
        """Cosine of each sentence with the question plus ``lexical_weight`` times the word overlap."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        info = self.encoder.info
        query = self.encoder.encode([info.query(question)])[0]
        vectors = self.sentence_vectors([info.document(s) for s in sentences])
        cosine = vectors @ query
        if self.config.lexical_weight:
            cosine = cosine + self.config.lexical_weight * self.lexical_overlap(
                question, [s.text for s in sentences]
            )
        return np.asarray(cosine, dtype=np.float32)


def not_found(hits: Sequence[SearchHit], score: float = 0.0, mode: str = "extractive") -> Answer:
    """The explicit "not found in the pages" answer; the hits stay as the closest sections."""
    return Answer(text=NOT_FOUND_TEXT, citations=[], found=False, hits=list(hits), score=score, mode=mode)


def extractive_answer(
    question: str,
    hits: Sequence[SearchHit],
    scorer: SentenceScorer,
) -> Answer:
    """Answer ``question`` with the best-matching sentences of the top ``hits``.

    Each top section is split into sentences; every sentence gets the scorer's score. Sentences within
    ``margin`` of the best one (and above ``min_score``) are kept, at most ``max_sentences``, duplicates
    dropped. They are grouped by section, sections in order of their best sentence and sentences in
    reading order, and each group ends with its ``[n]`` citation.

    Args:
        question: The user's question.
        hits: Search results, best first.
        scorer: Sentence scorer holding the encoder and :class:`AnswerConfig`.

    Returns:
        The answer; ``found`` is False (and the text says "not found in the pages") when the best
        sentence scores below ``min_score`` or there is nothing to read.
    """
    config = scorer.config
    top = list(hits[: config.sections])
    views: list[SentenceView] = []
    owner: list[int] = []  # index into top
    for i, hit in enumerate(top):
        for sentence in split_sentences(hit.text):
            views.append(SentenceView(hit.page_name, hit.section_title, sentence))
            owner.append(i)
    if not views:
        return not_found(hits)
    scores = scorer.score(question, views)
    best = float(scores.max())
    if best < config.min_score:
        return not_found(hits, best)

    floor = max(config.min_score, best - config.margin)
    chosen: list[int] = []
    seen: set[str] = set()
    for j in np.argsort(-scores, kind="stable"):
        if scores[j] < floor or len(chosen) >= config.max_sentences:
            break
        key = " ".join(_WORD.findall(views[j].text.lower()))
        if key in seen:  # boilerplate repeated across sections
            continue
        seen.add(key)
        chosen.append(int(j))

    # Group by section: sections ordered by their best chosen sentence, sentences in reading order.
    groups: dict[int, list[int]] = {}
    for j in chosen:
        groups.setdefault(owner[j], []).append(j)
    citations: list[Citation] = []
    parts: list[str] = []
    for n, (hit_index, members) in enumerate(groups.items(), start=1):
        citations.append(Citation.of(n, top[hit_index]))
        parts.append(" ".join(views[j].text for j in sorted(members)) + f" [{n}]")
    return Answer(text=" ".join(parts), citations=citations, found=True, hits=list(hits), score=best)
