"""The second stage: each top candidate scored by its best sentence (max-sim, after BERT-MaxP).

A section embedding averages everything the section says; a student's question is usually answered by one
sentence of it. The second stage splits each of the first stage's top ``sentence_depth`` candidates into
sentences, embeds each sentence the way the model embeds documents (page and section title in front), and
ranks the candidates by their best sentence's cosine with the question. That ranking is a third voter in
the weighted reciprocal rank fusion, beside the dense and BM25 rankings (:func:`sitetune.search.hybrid_rank`).

Sentence vectors are cached by their formatted text (:class:`SentenceVectors`); the answerer reads the
same cache, so a sentence is encoded once per process whichever step needs it first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sitetune.sentences import split_sentences

if TYPE_CHECKING:
    from sitetune.encode import Encoder


@dataclass(frozen=True)
class SentenceView:
    """A sentence dressed as a section, so the model's document template can format it."""

    page_name: str
    section_title: str
    text: str


class SentenceVectors:
    """Unit vectors of formatted sentences, encoded once and cached.

    Args:
        encoder: The search model's encoder.
        max_cache: Sentences kept; the cache is cleared when it fills (simple, and enough for one site:
            a few thousand sections are a few MB of vectors).
    """

    def __init__(self, encoder: Encoder, *, max_cache: int = 200_000) -> None:
        self.encoder = encoder
        self.max_cache = max_cache
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def vectors(self, documents: Sequence[str]) -> np.ndarray:
        """Vectors of already-formatted sentence documents, encoding only the ones not cached."""
        missing = list(dict.fromkeys(d for d in documents if d not in self._cache))
        if missing:
            encoded = self.encoder.encode(missing)
            with self._lock:
                if len(self._cache) + len(missing) > self.max_cache:
                    self._cache.clear()
                self._cache.update(zip(missing, encoded, strict=True))
        # A concurrent clear may have dropped an entry: re-encode those rather than fail.
        out = []
        for d in documents:
            vector = self._cache.get(d)
            out.append(vector if vector is not None else self.encoder.encode([d])[0])
        return np.stack(out) if out else np.zeros((0, self.encoder.dim), dtype=np.float32)

    def documents(self, page_name: str, section_title: str, text: str) -> list[str]:
        """The formatted sentence documents of one section, in reading order."""
        info = self.encoder.info
        return [info.document(SentenceView(page_name, section_title, s)) for s in split_sentences(text)]

    def warm(self, sections: Iterable[tuple[str, str, str]], batch: int = 256) -> int:
        """Encode every sentence of ``(page_name, section_title, text)`` sections ahead of time.

        Returns:
            Sentences encoded or found cached.
        """
        documents = [d for page, title, text in sections for d in self.documents(page, title, text)]
        for start in range(0, len(documents), batch):
            self.vectors(documents[start : start + batch])
        return len(documents)


def max_sim_order(
    query_vector: np.ndarray,
    sections: Sequence[tuple[str, str, str]],
    cache: SentenceVectors,
) -> list[int]:
    """Indexes into ``sections`` ordered by their best sentence's cosine with the query, best first.

    Args:
        query_vector: The unit query vector.
        sections: ``(page_name, section_title, text)`` of each candidate.
        cache: Where sentence vectors come from.
    """
    best = np.full(len(sections), -np.inf, dtype=np.float32)
    owners: list[int] = []
    documents: list[str] = []
    for i, (page, title, text) in enumerate(sections):
        docs = cache.documents(page, title, text)
        documents.extend(docs)
        owners.extend([i] * len(docs))
    if documents:
        cosines = cache.vectors(documents) @ query_vector.astype(np.float32)
        np.maximum.at(best, np.asarray(owners, dtype=np.int64), cosines.astype(np.float32))
    order = np.argsort(-best, kind="stable")
    return [int(i) for i in order if np.isfinite(best[i])]
