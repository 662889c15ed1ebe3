"""What an evaluation produced: the numbers the report, the CLI and the Python API read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitetune.evaluation.metrics import HEADLINE_METRICS


@dataclass
class EvaluationResult:
    """Everything the report shows.

    Attributes:
        corpus: The corpus file ("" for a corpus evaluated from memory).
        chunks: Unique chunks ranked.
        labels: Row labels in report order (models, ``bm25``, hybrids).
        text_forms: ``{label: how documents and queries were written for it}``.
        query_sets: ``{name: {"description", "queries", "unknown_ids", "unjudgeable"}}``.
        metrics: ``{label: {query_set: {metric: mean}}}``.
        per_query: ``{label: {query_set: {query_id: nDCG@10}}}``.
        answers: ``{served label: {query_set: answer metrics}}`` (:class:`.served.AnswerMetrics` as dicts),
            for the external query sets.
        settings: The served pipeline's settings (search and answer configuration), as printed.
        sts: ``{model label: Spearman on the general-English pairs}``.
        similarity: ``{model label: {"same_page_mean", "other_page_mean"}}`` of chunk-pair cosines.
        problems: Unknown ids and unjudgeable queries, one line each.
        out: The report folder.
        plots: PNG files written, relative to ``out``.
    """

    corpus: str
    chunks: int
    labels: list[str]
    text_forms: dict[str, str]
    query_sets: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, dict[str, float]]]
    per_query: dict[str, dict[str, dict[str, float]]]
    answers: dict[str, dict[str, dict[str, float]]]
    settings: dict[str, Any]
    sts: dict[str, float]
    similarity: dict[str, dict[str, float]]
    problems: list[str]
    out: Path
    plots: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """What ``--json`` prints: ``{label: {query_set: {headline metrics, and answer metrics if any}}}``.

        A share with nothing to count (no unanswerable question in the set) is ``None``: JSON has no NaN.
        """
        out: dict[str, dict[str, dict[str, float | None]]] = {
            label: {qs: {m: vals[m] for m in HEADLINE_METRICS} for qs, vals in sets.items()}
            for label, sets in self.metrics.items()}
        for label, sets in self.answers.items():
            for qs, vals in sets.items():
                out[label][qs].update({k: None if math.isnan(v) else v for k, v in vals.items()})
        return out
