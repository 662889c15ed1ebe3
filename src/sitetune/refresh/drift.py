"""How far the corpus has moved from the one the model was trained on.

A model folder does not list the sections it was trained on, so the store keeps a baseline
(``refresh-baseline.json``, :mod:`sitetune.index.refreshstate`): the chunk ids of the first generation a
refresh finds built with the model (``sitetune run`` trains on a corpus and indexes that same corpus, so
this is its training corpus), or of the corpus a refresh retrained it on. The drift is the share of
sections, over both corpora, that are in one and not the other: 0 when nothing changed, 1 when no section
is left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sitetune.index.refreshstate import generation_chunk_ids, read_baseline, write_baseline


@dataclass(frozen=True)
class Drift:
    """The corpus against the model's training corpus.

    Attributes:
        changed: Share of sections new or gone since training (0 to 1).
        threshold: Above it the model counts as stale.
        stale: ``changed > threshold``.
        baseline: Where the training corpus was taken from.
    """

    changed: float
    threshold: float
    stale: bool
    baseline: str

    def to_dict(self) -> dict[str, object]:
        """The form ``refresh.json`` keeps (``/healthz`` shows ``changed`` and ``stale``)."""
        return {"changed": self.changed, "threshold": self.threshold, "stale": self.stale,
                "baseline": self.baseline}


def changed_share(baseline: set[str], current: set[str]) -> float:
    """Sections in exactly one of the two sets, over the sections in either (0 for two empty sets)."""
    union = baseline | current
    return round(len(baseline ^ current) / len(union), 4) if union else 0.0


def measure(folder: Path, fingerprint: str, current: Iterable[str], *, generation: int | None,
            generation_fingerprint: str | None, threshold: float) -> Drift:
    """The drift of ``current`` (chunk ids) from the training corpus of the model with ``fingerprint``.

    Without a baseline for this model, one is recorded first: the served ``generation``'s chunks when that
    generation was built with the same model, else ``current`` itself (a model new to this store starts
    here).
    """
    ids = set(current)
    baseline = read_baseline(folder)
    if baseline is None or baseline.get("model_fingerprint") != fingerprint:
        if generation is not None and generation_fingerprint == fingerprint:
            chunks, source = generation_chunk_ids(folder, generation), f"generation {generation}"
        else:
            chunks, source = sorted(ids), "the corpus of the first refresh with this model"
        write_baseline(folder, fingerprint, chunks, generation=generation, source=source)
        baseline = read_baseline(folder) or {"chunks": chunks, "source": source}
    share = changed_share(set(baseline["chunks"]), ids)
    return Drift(share, threshold, share > threshold, str(baseline.get("source", "")))


def reset(folder: Path, fingerprint: str, current: Iterable[str], *, source: str) -> None:
    """Record ``current`` as the training corpus of a model just trained on it."""
    write_baseline(folder, fingerprint, list(current), generation=None, source=source)
