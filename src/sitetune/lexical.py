"""BM25 over chunk texts (bm25s), the lexical half of hybrid search and the evaluation's baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    """A BM25 index over documents identified by string ids.

    Args:
        ids: One id per document.
        texts: The documents (already formatted as they should be matched).

    Use :meth:`search` for ranked ids with scores; :meth:`save` / :meth:`load` to persist.
    """

    def __init__(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        import bm25s

        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        self.ids = list(ids)
        self._retriever = bm25s.BM25()
        tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
        self._retriever.index(tokens, show_progress=False)

    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        """The top ``k`` (id, score) pairs for ``query``, best first; zero-score documents left out."""
        import bm25s

        if not self.ids:
            return []
        k = min(k, len(self.ids))
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False)
        if not tokens.ids[0]:
            return []
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for ``query``, in id order."""
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False,
                                return_ids=False)
        return np.asarray(self._retriever.get_scores(tokens[0]), dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """Write the index into ``directory`` (created); ids go to ``ids.txt``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(directory))
        (directory / "ids.txt").write_text("\n".join(self.ids) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> BM25Index:
        """Read an index written by :meth:`save`."""
        import bm25s

        directory = Path(directory)
        self = cls.__new__(cls)
        self.ids = (directory / "ids.txt").read_text(encoding="utf-8").split()
        self._retriever = bm25s.BM25.load(str(directory))
        return self
