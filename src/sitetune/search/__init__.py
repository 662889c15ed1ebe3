"""Search: hybrid dense + BM25 retrieval over a store, with typed, cited hits.

- :class:`Searcher` (``Searcher.open(store)``) reads a question into a :class:`Query` and answers it with
  :class:`SearchHit` lists.
- :func:`hybrid_rank` fuses rankings the way search does (for the evaluation).
- :func:`reciprocal_rank_fusion` is the fusion primitive.
"""

from __future__ import annotations

from sitetune.search.fusion import reciprocal_rank_fusion
from sitetune.search.hybrid import Searcher, hybrid_rank
from sitetune.search.programs import ProgramDetector
from sitetune.search.types import PagePlace, Query, SearchHit

__all__ = ["PagePlace", "ProgramDetector", "Query", "SearchHit", "Searcher", "hybrid_rank", "reciprocal_rank_fusion"]
