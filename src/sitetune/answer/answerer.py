"""Search then answer: the one entry point the CLI and the HTTP API share."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sitetune.answer.extractive import SentenceScorer, extractive_answer, not_found
from sitetune.answer.llm import CircuitBreaker, LLMConfig, LLMError, generate_answer
from sitetune.answer.types import Answer
from sitetune.config import AnswerConfig
from sitetune.search.types import Query, SearchHit
from sitetune.sitevocab import SiteVocabulary

if TYPE_CHECKING:
    from sitetune.encode import Encoder

_LOG = logging.getLogger(__name__)
#: The warning of an answer whose LLM call failed. Fixed: the failure's detail (the endpoint, its error
#: body) goes to the server log under the reference the warning ends with, never to the client.
LLM_FAILED_WARNING = "the generative answer failed; an extractive answer is shown"
#: The warning of an answer given while the circuit breaker keeps the failing LLM uncalled.
LLM_PAUSED_WARNING = "the generative answer is unavailable for now; an extractive answer is shown"


class SearcherLike(Protocol):
    """What answering needs from a searcher (:class:`sitetune.search.Searcher` is one)."""

    @property
    def encoder(self) -> Encoder: ...

    @property
    def pages(self) -> Sequence[str]: ...

    def read(self, question: str, *, page: str | None = None, vector: np.ndarray | None = None) -> Query: ...

    def search(self, query: Query | str, k: int | None = None, page: str | None = None) -> list[SearchHit]: ...

    def follow(self, query: Query, hit: SearchHit) -> SearchHit | None: ...


@dataclass(frozen=True)
class Retrieval:
    """An answer's model work, done: what :meth:`Answerer.generate` needs to finish it.

    Attributes:
        question: The question as asked (what an LLM is sent).
        hits: The sections read, best first (a followed section second, see :meth:`Answerer.retrieve`).
        shown: The hits returned with the answer.
        extractive: The extractive answer over ``hits``; in LLM mode the gate and the fallback.
        query: The question as search read it.
    """

    question: str
    hits: list[SearchHit]
    shown: list[SearchHit]
    extractive: Answer
    query: Query | None = None


class Answerer:
    """Answers questions over a searcher's store, extractively or through an LLM.

    An answer is two steps: :meth:`retrieve` does the model work (search, sentence scoring, the extractive
    answer), :meth:`generate` the LLM call. A server runs the first under its model lock and the second
    outside it, so a slow endpoint holds up no search.

    In LLM mode a :class:`~sitetune.answer.llm.CircuitBreaker` (``llm.breaker_failures``,
    ``llm.breaker_cooldown_s``) stops calling an endpoint that keeps failing.

    Args:
        searcher: Retrieval; its encoder also scores answer sentences, so one model is loaded.
        config: Sections read, sentences kept, threshold.
        llm: Generative mode's endpoint; ``None`` for extractive answers only.
    """

    def __init__(
        self, searcher: SearcherLike, config: AnswerConfig | None = None, llm: LLMConfig | None = None
    ):
        self.searcher = searcher
        self.config = config or AnswerConfig()
        self.llm = llm
        # The site's name and near-universal words are no evidence that a sentence answers (sitevocab).
        vocabulary = getattr(searcher, "vocabulary", None)
        if vocabulary is None:
            reader = getattr(searcher, "reader", None)
            vocabulary = SiteVocabulary.of_chunks(reader.chunks) if reader is not None else None
        common = vocabulary.common_words if vocabulary is not None else frozenset()
        # Search's second stage and the answer read one sentence-vector cache when the searcher has one.
        self.scorer = SentenceScorer(searcher.encoder, self.config, common_words=common,
                                     cache=getattr(searcher, "sentences", None))
        # Shared by every answer: consecutive failures across requests open it (never, without an LLM).
        self.breaker = (
            CircuitBreaker(llm.breaker_failures, llm.breaker_cooldown_s) if llm is not None
            else CircuitBreaker(0, 0.0)
        )

    def warm(self, sections: Iterable[Any]) -> int:
        """Encode every quotable unit of ``sections`` (objects with page_name, section_title, text) ahead of time.

        A server does this once at start so no student's first question pays for encoding them.

        Returns:
            Units encoded or found cached.
        """
        return self.scorer.warm(sections)

    def answer(
        self, question: Query | str, *, k: int | None = None, page: str | None = None, fallback: bool = False
    ) -> Answer:
        """Search for ``question`` and answer from the hits.

        Args:
            question: The question.
            k: Hits returned with the answer (at least ``config.sections`` are read for it).
            page: Only sections of this page.
            fallback: In LLM mode, answer extractively (with a warning) when the endpoint fails instead of
                raising; the server uses this so a broken LLM does not turn into 5xx for students.

        Raises:
            LLMError: LLM mode failed and ``fallback`` is False.
        """
        return self.generate(self.retrieve(question, k=k, page=page), fallback=fallback)

    def retrieve(self, question: Query | str, *, k: int | None = None, page: str | None = None) -> Retrieval:
        """The model work of an answer: search, then the extractive answer over the hits.

        Args:
            question: The question, read by the searcher's ``read`` (a string is read here, with ``page``);
                it is encoded once, for search and for scoring the answer's sentences alike.
            k: Hits returned with the answer (at least ``config.sections`` are read for it).
            page: Only sections of this page, for a string ``question``.
        """
        k = k or self.config.sections
        query = self.searcher.read(question, page=page) if isinstance(question, str) else question
        hits = self.searcher.search(query, k=max(k, self.config.sections))
        shown = hits[:k]
        # A first section that sends the reader to another page ("English level A") is answered in two
        # steps: that page's best section is read second, so the answer can quote and cite it.
        first_hits = 1
        if hits and hits[0].see_also:
            followed = self.searcher.follow(query, hits[0])
            if followed is not None:
                hits = [hits[0], followed, *[h for h in hits[1:] if h.chunk_id != followed.chunk_id]]
                first_hits = 2
        # Sentences are scored against the question as search read it (typos corrected), with its vector.
        result = extractive_answer(query, hits, self.scorer, first_hits)
        return Retrieval(question=query.text, hits=hits, shown=shown, extractive=result, query=query)

    def calls_llm(self, retrieval: Retrieval) -> bool:
        """Whether :meth:`generate` may call the LLM for ``retrieval`` (LLM mode and the gate passed)."""
        return self.llm is not None and retrieval.extractive.found

    def generate(self, retrieval: Retrieval, *, fallback: bool = False) -> Answer:
        """Finish an answer: the extractive one, or in LLM mode the endpoint's, checked. No model work.

        The extractive answer gates the call: when it found nothing, the LLM is not asked. When the call
        fails, or the circuit breaker is open, and ``fallback`` is set, the extractive answer is returned
        with a fixed warning; the failure's detail is logged (``logging``), never put in the answer.

        Args:
            retrieval: What :meth:`retrieve` returned.
            fallback: In LLM mode, answer extractively (with a warning) when the endpoint fails instead of
                raising; the server uses this so a broken LLM does not turn into 5xx for students.

        Raises:
            LLMError: LLM mode failed (or the breaker is open) and ``fallback`` is False.
        """
        gate = retrieval.extractive
        if self.llm is None:
            result = gate
        elif not gate.found:
            result = not_found(retrieval.hits, gate.score, mode="llm")
        else:
            result = self._generative(retrieval, self.llm, fallback)
        return _with(result, hits=retrieval.shown)

    def _generative(self, retrieval: Retrieval, llm: LLMConfig, fallback: bool) -> Answer:
        gate = retrieval.extractive
        breaker = self.breaker
        if not breaker.allow():
            if not fallback:
                raise LLMError(
                    f"the LLM failed {llm.breaker_failures} times in a row: not called for "
                    f"{llm.breaker_cooldown_s:g} s"
                )
            return _with(gate, warning=LLM_PAUSED_WARNING)
        try:
            result = generate_answer(
                retrieval.question, retrieval.hits, gate, llm, sections=self.config.sections
            )
        except LLMError as exc:
            breaker.failure()
            if not fallback:
                raise
            reference = uuid.uuid4().hex[:12]
            _LOG.warning("generative answer failed (reference %s), extractive shown: %s", reference, exc)
            return _with(gate, warning=f"{LLM_FAILED_WARNING} (reference {reference})")
        breaker.success()
        return result


def _with(answer: Answer, **changes: object) -> Answer:
    from dataclasses import replace

    return replace(answer, **changes)  # type: ignore[arg-type]
