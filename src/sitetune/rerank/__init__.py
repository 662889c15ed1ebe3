"""The second stage: reread the fused top candidates with the question and reorder them.

Two rerankers share one interface (:class:`Reranker`: scores for one question and its candidate
documents, higher is better):

- :class:`~sitetune.rerank.cross.CrossEncoderReranker`: a cross-encoder trained on the site by
  :func:`~sitetune.rerank.train.train_reranker` and saved in ``MODEL/reranker`` beside the bi-encoder;
- :class:`~sitetune.rerank.late.LateInteractionReranker`: token-level max-sim (ColBERT-style late
  interaction) with the bi-encoder's own token vectors; no training, no second model.

:class:`sitetune.search.Searcher` feeds the reranker's order of the top ``SearchConfig.rerank_depth``
candidates into the fusion as another voter, weighted by ``SearchConfig.rerank_weight``.
"""

from __future__ import annotations

from sitetune.rerank.base import (
    RERANKER_DIR,
    Reranker,
    has_reranker,
    load_reranker,
    reranker_documents,
)

__all__ = ["RERANKER_DIR", "Reranker", "has_reranker", "load_reranker", "reranker_documents"]
