"""Evaluation: rank the corpus with each model, BM25 and hybrids; score the rankings; write a report.

Use :func:`evaluate` (the ``sitetune evaluate`` verb); the pieces live in :mod:`.metrics`,
:mod:`.querysets`, :mod:`.sts`, :mod:`.plots` and :mod:`.report`.
"""

from __future__ import annotations

from sitetune.evaluation.evaluate import evaluate
from sitetune.evaluation.result import EvaluationResult

__all__ = ["EvaluationResult", "evaluate"]
