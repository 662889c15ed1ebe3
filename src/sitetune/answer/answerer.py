"""Search then answer: the one entry point the CLI and the HTTP API share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sitetune.answer.extractive import SentenceScorer, extractive_answer
from sitetune.answer.llm import LLMConfig, LLMError, llm_answer
from sitetune.answer.types import Answer
from sitetune.config import AnswerConfig
from sitetune.search.types import SearchHit

if TYPE_CHECKING:
    from sitetune.encode import Encoder


class SearcherLike(Protocol):
    """What answering needs from a searcher (:class:`sitetune.search.Searcher` is one)."""

    @property
    def encoder(self) -> Encoder: ...

    @property
    def pages(self) -> Sequence[str]: ...

    def search(self, query: str, k: int = 5, page: str | None = None) -> list[SearchHit]: ...


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
        self.scorer = SentenceScorer(searcher.encoder, self.config)

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
        if self.llm is None:
            result = extractive_answer(question, hits, self.scorer)
        else:
            try:
                result = llm_answer(question, hits, self.scorer, self.llm)
            except LLMError as exc:
                if not fallback:
                    raise
                result = extractive_answer(question, hits, self.scorer)
                result = _with(result, warning=f"generative mode failed, extractive answer shown: {exc}")
        return _with(result, hits=shown)


def _with(answer: Answer, **changes: object) -> Answer:
    from dataclasses import replace

    return replace(answer, **changes)  # type: ignore[arg-type]
