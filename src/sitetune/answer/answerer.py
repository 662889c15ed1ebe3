"""Search then answer: the one entry point the CLI and the HTTP API share."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sitetune.answer.extractive import SentenceScorer, extractive_answer
from sitetune.answer.llm import LLMConfig, LLMError, llm_answer
from sitetune.answer.types import Answer
from sitetune.config import AnswerConfig
from sitetune.search.types import SearchHit
from sitetune.sitevocab import SiteVocabulary

if TYPE_CHECKING:
    from sitetune.encode import Encoder


class SearcherLike(Protocol):
    """What answering needs from a searcher (:class:`sitetune.search.Searcher` is one)."""

    @property
    def encoder(self) -> Encoder: ...

    @property
    def pages(self) -> Sequence[str]: ...

    def search(self, query: str, k: int = 5, page: str | None = None) -> list[SearchHit]: ...

    def normalise_query(self, query: str) -> str: ...


class ReuseLastQuery:
    """Wraps an encoder so a thread encoding the same single text again soon after pays once.

    Answering encodes the question in search and again to score sentences; this makes the second a
    lookup. Search may encode another text in between (a named programme page's sections are also ranked
    by the rest of the question), so each thread keeps its last ``keep`` texts, no more: there is no
    cross-request cache to skew timings.

    Args:
        encoder: The encoder to wrap (its ``dim``, ``info`` and ``model_path`` are passed through).
        keep: Single texts remembered per thread.
    """

    def __init__(self, encoder: Encoder, keep: int = 4) -> None:
        self.inner = encoder
        self.dim = encoder.dim
        self.info = encoder.info
        self.model_path: Path = encoder.model_path
        self.keep = keep
        self._recent = threading.local()

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.encode(texts, show_progress=show_progress)
        recent: dict[str, np.ndarray] | None = getattr(self._recent, "items", None)
        if recent is None:
            recent = self._recent.items = {}
        if texts[0] in recent:
            return np.asarray(recent[texts[0]][None, :])
        vectors = self.inner.encode(texts, show_progress=show_progress)
        recent[texts[0]] = vectors[0].copy()
        while len(recent) > self.keep:  # dicts keep insertion order: drop the oldest
            del recent[next(iter(recent))]
        return vectors

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Answerer:
    """Answers questions over a searcher's store, extractively or through an LLM.

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

    def warm(self, sections: Iterable[Any]) -> int:
        """Encode every quotable unit of ``sections`` (objects with page_name, section_title, text) ahead of time.

        A server does this once at start so no student's first question pays for encoding them.

        Returns:
            Units encoded or found cached.
        """
        return self.scorer.warm(sections)

    def answer(
        self, question: str, *, k: int | None = None, page: str | None = None, fallback: bool = False
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
        k = k or self.config.sections
        hits = self.searcher.search(question, k=max(k, self.config.sections), page=page)
        shown = hits[:k]
        # Sentences are scored against the question as search read it (typos corrected), which also lets
        # the scorer reuse search's query vector.
        read_as = self.searcher.normalise_query(question)
        if self.llm is None:
            result = extractive_answer(read_as, hits, self.scorer)
        else:
            try:
                result = llm_answer(question, hits, self.scorer, self.llm)
            except LLMError as exc:
                if not fallback:
                    raise
                result = extractive_answer(read_as, hits, self.scorer)
                result = _with(result, warning=f"generative mode failed, extractive answer shown: {exc}")
        return _with(result, hits=shown)


def _with(answer: Answer, **changes: object) -> Answer:
    from dataclasses import replace

    return replace(answer, **changes)  # type: ignore[arg-type]
