"""General-English similarity check: Spearman between a model's cosine and human 0–5 scores.

Tuning on one website can make a model forget general similarity; this small check shows it.
The packaged pairs (``data/sts/general_english.tsv``) were written for sitetune: paraphrases,
partial overlaps and unrelated sentences.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.errors import InputError

if TYPE_CHECKING:
    from sitetune.encode import Encoder


@dataclass(frozen=True)
class SimilarityPair:
    """Two sentences and a similarity score from 0 (unrelated) to 5 (same meaning)."""

    sentence1: str
    sentence2: str
    score: float


def packaged_pairs_path() -> Path:
    """The general-English pairs shipped with sitetune."""
    from importlib.resources import files

    return Path(str(files("sitetune.data") / "sts" / "general_english.tsv"))


def load_pairs(path: str | Path | None = None) -> list[SimilarityPair]:
    """Read a TSV with a header ``sentence1, sentence2, score``.

    Raises:
        InputError: Missing columns, or a score that is not a number in [0, 5].
    """
    path = Path(path) if path is not None else packaged_pairs_path()
    pairs: list[SimilarityPair] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = {"sentence1", "sentence2", "score"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"missing columns {sorted(missing)}", path=str(path))
        for line, row in enumerate(reader, start=2):
            try:
                score = float(row["score"])
            except (TypeError, ValueError):
                raise InputError(f"score {row['score']!r} is not a number", path=str(path), line=line,
                                 field="score") from None
            if not 0 <= score <= 5:
                raise InputError(f"score {score} is outside 0–5", path=str(path), line=line, field="score")
            pairs.append(SimilarityPair(row["sentence1"], row["sentence2"], score))
    return pairs


def spearman(predicted: list[float], gold: list[float]) -> float:
    """Spearman rank correlation (scipy)."""
    from scipy.stats import spearmanr

    result = spearmanr(predicted, gold)
    return float(result.statistic)


def sts_spearman(encoder: Encoder, pairs: list[SimilarityPair]) -> float:
    """Spearman between the encoder's cosine similarities and the pairs' scores.

    Sentences are encoded raw (no query or document template): this measures general similarity.
    """
    import numpy as np

    a = encoder.encode([p.sentence1 for p in pairs])
    b = encoder.encode([p.sentence2 for p in pairs])
    cosines = np.sum(a * b, axis=1)
    return spearman([float(x) for x in cosines], [p.score for p in pairs])
