"""Rankings and answers of the served pipeline, for scoring: the evaluation and the tuning benchmarks call this.

Every function takes an opened :class:`~sitetune.search.Searcher` (or an :class:`~sitetune.answer.Answerer`
over one) and asks it exactly what ``sitetune search``, ``sitetune answer`` and the HTTP API ask it: the
query is encoded alone with :meth:`Searcher.encode_query`, read with :meth:`Searcher.read` and ranked
with :meth:`Searcher.rank`. The only differences are ones scoring needs: rankings are ``depth`` deep
instead of ``k``, and a query's ``exclude`` ids (the same-page set's own chunk) are dropped before scoring.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sitetune.evaluation.querysets import Query, QuerySet, normalise

if TYPE_CHECKING:
    from sitetune.answer import Answer, Answerer
    from sitetune.search import Searcher

#: How deep every system ranks (the deepest metric is @100).
DEPTH = 100
#: The [n] citation markers of an answer, removed before answer strings are looked for in its text.
_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class SystemRankings:
    """The three rankings of one store for one query set: ``{query_id: [chunk_id, ...]}`` each."""

    dense: dict[str, list[str]]
    bm25: dict[str, list[str]]
    served: dict[str, list[str]]


def query_vectors(searcher: Searcher, queries: Sequence[Query]) -> list[np.ndarray]:
    """Each query encoded alone, as search encodes it (batching could change bf16 vectors slightly)."""
    return [searcher.encode_query(q.text) for q in queries]


def _ids(searcher: Searcher, rows: Sequence[int], exclude: frozenset[str], depth: int) -> list[str]:
    chunks = searcher.reader.chunks
    return [cid for cid in (chunks[r].chunk_id for r in rows) if cid not in exclude][:depth]


def served_ranking(searcher: Searcher, query: Query, vector: np.ndarray | None = None,
                   depth: int = DEPTH) -> list[str]:
    """The chunk_ids search returns for ``query``, best first (search's first ``k`` are these)."""
    fused = searcher.rank(searcher.read(query.text, vector=vector))
    return _ids(searcher, [row for row, _ in fused], query.exclude, depth)


def system_rankings(searcher: Searcher, queries: Sequence[Query], depth: int = DEPTH,
                    vectors: Sequence[np.ndarray] | None = None) -> SystemRankings:
    """Dense alone, BM25 alone and the served fusion, from the same searcher and query vectors.

    Args:
        searcher: An opened searcher; its ``config`` is what the served ranking uses.
        queries: The queries to rank.
        depth: How many ids each ranking keeps.
        vectors: The queries' vectors from :func:`query_vectors` (encoded here when not given).
    """
    vecs = list(vectors) if vectors is not None else query_vectors(searcher, queries)
    dense, bm25, served = {}, {}, {}
    for q, v in zip(queries, vecs, strict=True):
        dense[q.id] = _ids(searcher, searcher.dense_rows(v), q.exclude, depth)
        bm25[q.id] = _ids(searcher, searcher.bm25_rows(q.text), q.exclude, depth)
        served[q.id] = served_ranking(searcher, q, v, depth)
    return SystemRankings(dense, bm25, served)


def first_answers(judgments: dict[str, dict[str, int]], rankings: dict[str, list[str]]) -> float:
    """Share of queries whose first result is graded 2 ("answers it")."""
    if not rankings:
        return 0.0
    hits = [1.0 if r and judgments[q].get(r[0], 0) >= 2 else 0.0 for q, r in rankings.items()]
    return sum(hits) / len(hits)


@dataclass(frozen=True)
class AnswerOutcome:
    """What the answer step did for one query.

    Attributes:
        query_id: The query.
        answerable: Whether the query file says the site answers it.
        found: Whether the answerer answered (False: "not found").
        correct: For an answerable query, whether the answer holds a judged answer: one of its answer
            strings is in the answer text, or (for id-judged queries) the first citation is graded 2.
        score: The answer's best sentence score (what the threshold is compared with).
        first_cited: For an answerable query, whether the answer's first citation is a grade-2 chunk (a
            section that answers it).
        words: Words of a found answer, citation markers removed (0 when not found).
        stray: Whether a found answer cites a section not judged relevant to the query (no grade).
        search_first: For an answerable query, whether search's first result (the answer's first hit) is a
            grade-2 chunk: the bound on ``first_cited``, since the answer quotes what search puts first.
    """

    query_id: str
    answerable: bool
    found: bool
    correct: bool
    score: float
    first_cited: bool = False
    words: int = 0
    stray: bool = False
    search_first: bool = False


def answer_outcome(answerer: Answerer, query: Query) -> AnswerOutcome:
    """Ask the answerer ``query`` as the service would and judge the answer."""
    return judge_answer(query, answerer.answer(query.text))


def judge_answer(query: Query, answer: Answer) -> AnswerOutcome:
    """Judge an answer to ``query`` against its judged answer strings and graded sections."""
    correct = first_cited = stray = False
    words = 0
    search_first = query.answerable and bool(answer.hits) and query.relevant.get(answer.hits[0].chunk_id, 0) >= 2
    if answer.found:
        plain = _MARKER.sub("", answer.text)
        words = len(plain.split())
        stray = any(query.relevant.get(c.chunk_id, 0) == 0 for c in answer.citations)
        if query.answerable:
            first = answer.citations[0].chunk_id if answer.citations else None
            first_cited = first is not None and query.relevant.get(first, 0) >= 2
            if query.answers:
                text = normalise(plain)
                correct = any(normalise(a) in text for a in query.answers)
            else:
                correct = first_cited
    return AnswerOutcome(query.id, query.answerable, answer.found, correct, answer.score, first_cited, words,
                         stray, search_first)


@dataclass(frozen=True)
class AnswerMetrics:
    """Answer-level metrics of one query set.

    Attributes:
        answered_correctly: Share of answerable queries whose answer holds a judged answer.
        wrongly_not_found: Share of answerable queries answered "not found".
        unanswerable_not_found: Share of unanswerable queries answered "not found" (NaN without any).
        answerable: Answerable queries scored.
        unanswerable: Unanswerable queries scored.
        outcomes: One :class:`AnswerOutcome` per query.
    """

    answered_correctly: float
    wrongly_not_found: float
    unanswerable_not_found: float
    answerable: int
    unanswerable: int
    outcomes: tuple[AnswerOutcome, ...]

    def as_dict(self) -> dict[str, float]:
        """The three shares and the two counts, for metrics.json and ``--json``."""
        return {"answered_correctly": self.answered_correctly, "wrongly_not_found": self.wrongly_not_found,
                "unanswerable_not_found": self.unanswerable_not_found,
                "answerable": float(self.answerable), "unanswerable": float(self.unanswerable)}


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def answer_metrics(answerer: Answerer, query_set: QuerySet) -> AnswerMetrics:
    """Answer every query of ``query_set`` (the unanswerable ones too) and compute :class:`AnswerMetrics`."""
    outcomes = tuple(answer_outcome(answerer, q) for q in [*query_set.queries, *query_set.unanswerable])
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    return AnswerMetrics(
        answered_correctly=_share([o.correct for o in answerable]),
        wrongly_not_found=_share([not o.found for o in answerable]),
        unanswerable_not_found=_share([not o.found for o in unanswerable]),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        outcomes=outcomes,
    )
