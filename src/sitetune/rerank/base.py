"""The reranker interface, where a model folder keeps its reranker, and how one is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from sitetune.config import EncoderConfig, RerankerKind
from sitetune.modelinfo import TITLED_TEMPLATE, Section, document_text

#: The folder inside a model folder that holds its cross-encoder.
RERANKER_DIR = "reranker"


class Reranker(Protocol):
    """Scores a question against candidate documents (higher is better)."""

    @property
    def kind(self) -> RerankerKind: ...

    def scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One float32 score per document, in order."""
        ...


def reranker_documents(sections: Sequence[Section]) -> list[str]:
    """Candidates written the way the cross-encoder reads them: page and section title, then the text."""
    return [document_text(s, TITLED_TEMPLATE) for s in sections]


def has_reranker(model_path: str | Path) -> bool:
    """Whether the model folder holds a trained cross-encoder (``MODEL/reranker``)."""
    folder = Path(model_path) / RERANKER_DIR
    return (folder / "config.json").is_file()


def load_reranker(
    model_path: str | Path, kind: RerankerKind | str | None = None, config: EncoderConfig | None = None
) -> Reranker | None:
    """The reranker for a bi-encoder folder.

    Args:
        model_path: The bi-encoder's folder (``"base"`` has no trained reranker).
        kind: Which reranker; ``None``: the cross-encoder when the folder has one, else none.
        config: Backend, precision and threads (the encoder's): the cross-encoder runs on its OpenVINO
            export or on torch as :func:`sitetune.rerank.cross.load_cross_encoder` decides from
            ``config.backend``; late interaction runs on torch.

    Returns:
        The reranker, or ``None`` when ``kind`` is ``None`` and the folder has no cross-encoder.
    """
    from sitetune.models import resolve_model_path

    path = resolve_model_path(model_path)
    if kind is None:
        if not has_reranker(path):
            return None
        kind = RerankerKind.CROSS_ENCODER
    kind = RerankerKind(kind)
    if kind is RerankerKind.CROSS_ENCODER:
        from sitetune.rerank.cross import load_cross_encoder

        return load_cross_encoder(path / RERANKER_DIR, config)
    from sitetune.rerank.late import LateInteractionReranker

    return LateInteractionReranker(path, config)
