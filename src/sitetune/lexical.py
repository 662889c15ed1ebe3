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


#: Term pairs (document, term) scored per pass when a :class:`BM25Writer` lays out its index: with 8 bytes
#: each, the part being laid out costs ~256 MB, whatever the corpus size.
BM25_PART_PAIRS = 32_000_000
_DOCS_PER_READ = 65_536
_PAIRS, _DOCS, _VOCAB, _IDS = "pairs.i32", "docs.i32", "vocab.txt", "ids.txt"


def _npy_header(dtype: str, length: int) -> bytes:
    """A version-1 ``.npy`` header for a 1-d array (written before the data is appended)."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": (length,)})
    return buffer.getvalue()


class BM25Writer:
    """Builds the same index as :class:`BM25Index` from batches of documents, in memory that does not grow with them.

    Each batch is tokenized as bm25s does (English stopwords, Snowball stemmer) and appended to files in
    ``work_dir``: per document its length and (term, count) pairs, plus the vocabulary and ids. Only the
    vocabulary and the document frequencies stay in memory. :meth:`finish` lays the scores out as bm25s's
    CSC files, a range of terms at a time (at most :data:`BM25_PART_PAIRS` pairs per pass), so
    :meth:`BM25Index.load` reads the result.

    Args:
        work_dir: A folder for the intermediate files (created).
        state: The :meth:`checkpoint` of an interrupted writer over the same folder, to resume from it.
    """

    def __init__(self, work_dir: str | Path, state: dict[str, int] | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._stemmer = _stemmer()
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(1024, dtype=np.int64)
        self.docs = 0
        self.total_length = 0
        if state is not None:
            self._resume(state)
        # Open across batches; closed by close() or finish().
        self._files = {name: open(self.work_dir / name, "ab") for name in (_PAIRS, _DOCS, _IDS)}  # noqa: SIM115
        self._vocab_file = open(self.work_dir / _VOCAB, "a", encoding="utf-8")  # noqa: SIM115

    def _resume(self, state: dict[str, int]) -> None:
        """Cut the files back to a checkpoint and recount the vocabulary and document frequencies."""
        for name in (_PAIRS, _DOCS, _IDS, _VOCAB):
            with open(self.work_dir / name, "ab") as fh:
                fh.truncate(state[name])
        with open(self.work_dir / _VOCAB, encoding="utf-8") as fh:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(fh)}
        self.docs, self.total_length = state["docs"], state["total_length"]
        docs = np.fromfile(self.work_dir / _DOCS, dtype=np.int32).reshape(-1, 2)
        if len(self.vocab) != state["terms"] or len(docs) != self.docs:
            raise ValueError(f"{self.work_dir}: BM25 files do not match their checkpoint")
        self.df = np.zeros(max(1024, 2 * len(self.vocab)), dtype=np.int64)
        with open(self.work_dir / _PAIRS, "rb") as fh:
            while (block := np.fromfile(fh, dtype=np.int32, count=2 * BM25_PART_PAIRS // 8)).size:
                self.df += np.bincount(block[0::2], minlength=len(self.df))[: len(self.df)]

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Tokenize and append documents (in index order)."""
        import bm25s

        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        if not texts:
            return
        tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=self._stemmer, show_progress=False)
        local_to_global = np.empty(max(len(tokens.vocab), 1), dtype=np.int64)
        new_terms = []
        for term, local in tokens.vocab.items():
            number = self.vocab.get(term)
            if number is None:
                number = self.vocab[term] = len(self.vocab)
                new_terms.append(term)
            local_to_global[local] = number
        lengths = np.fromiter((len(d) for d in tokens.ids), dtype=np.int64, count=len(tokens.ids))
        flat = np.fromiter((t for d in tokens.ids for t in d), dtype=np.int64, count=int(lengths.sum()))
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        keys, counts = np.unique((doc << 32) | local_to_global[flat], return_counts=True)
        terms, doc_of_pair = keys & 0xFFFFFFFF, keys >> 32
        pairs = np.empty((len(keys), 2), dtype=np.int32)
        pairs[:, 0], pairs[:, 1] = terms, counts
        per_doc = np.empty((len(texts), 2), dtype=np.int32)
        per_doc[:, 0] = lengths
        per_doc[:, 1] = np.bincount(doc_of_pair, minlength=len(texts))
        if len(self.vocab) > len(self.df):
            self.df = np.concatenate([self.df, np.zeros(len(self.vocab) + len(self.df), dtype=np.int64)])
        np.add.at(self.df, terms, 1)
        self._files[_PAIRS].write(pairs.tobytes())
        self._files[_DOCS].write(per_doc.tobytes())
        self._files[_IDS].write("".join(f"{i}\n" for i in ids).encode("utf-8"))
        self._vocab_file.write("".join(f"{t}\n" for t in new_terms))
        self.docs += len(texts)
        self.total_length += int(lengths.sum())

    def checkpoint(self) -> dict[str, int]:
        """Flush and fsync the files; returns the state :class:`BM25Writer` resumes from."""
        import os

        self._vocab_file.flush()
        os.fsync(self._vocab_file.fileno())
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
        sizes = {name: (self.work_dir / name).stat().st_size for name in (_PAIRS, _DOCS, _IDS, _VOCAB)}
        return {**sizes, "docs": self.docs, "total_length": self.total_length, "terms": len(self.vocab)}

    def close(self) -> None:
        """Close the intermediate files (they stay for :meth:`finish` or a resume)."""
        for fh in self._files.values():
            fh.close()
        self._vocab_file.close()

    def finish(self, directory: str | Path, *, part_pairs: int = BM25_PART_PAIRS) -> None:
        """Write the index into ``directory`` in bm25s's format (what :meth:`BM25Index.save` writes).

        Args:
            directory: The index folder (created).
            part_pairs: Pairs laid out per pass over the intermediate files (bounds memory).
        """
        import json
        import shutil

        import bm25s

        self.checkpoint()
        self.close()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        defaults = bm25s.BM25()
        k1, b = float(defaults.k1), float(defaults.b)
        n_terms, n_docs = len(self.vocab), self.docs
        df = self.df[:n_terms]
        docs = np.fromfile(self.work_dir / _DOCS, dtype=np.int32).reshape(-1, 2)
        doc_len = docs[:, 0].astype(np.float64)
        first_pair = np.concatenate(([0], np.cumsum(docs[:, 1], dtype=np.int64)))
        avg_len = np.float64(self.total_length) / n_docs if n_docs else np.float64(0.0)
        # bm25s's Lucene idf and tf saturation, computed in float64 and stored as float32 as bm25s does.
        idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32).astype(np.float64)
        norm = k1 * ((1 - b) + b * doc_len / avg_len) if n_docs else doc_len
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        nnz = int(indptr[-1])
        with open(directory / "data.csc.index.npy", "wb") as data_fh, \
                open(directory / "indices.csc.index.npy", "wb") as index_fh:
            data_fh.write(_npy_header("<f4", nnz))
            index_fh.write(_npy_header("<i4", nnz))
            start = 0
            while start < n_terms:
                # The next range of terms whose pairs fit the budget (at least one term).
                end = max(start + 1, int(np.searchsorted(indptr, indptr[start] + part_pairs, side="right")) - 1)
                end = min(end, n_terms)
                data, rows = self._lay_out(start, end, indptr, first_pair, norm, idf)
                data_fh.write(data.tobytes())
                index_fh.write(rows.tobytes())
                start = end
        np.save(directory / "indptr.csc.index.npy", indptr, allow_pickle=False)
        vocab = dict(self.vocab)
        if "" not in vocab:
            vocab[""] = max(vocab.values(), default=-1) + 1
        (directory / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        params = {
            "k1": defaults.k1, "b": defaults.b, "delta": defaults.delta, "method": defaults.method,
            "idf_method": defaults.idf_method, "dtype": defaults.dtype, "int_dtype": defaults.int_dtype,
            "num_docs": n_docs, "version": bm25s.__version__, "backend": defaults.backend,
        }
        (directory / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")
        shutil.copyfile(self.work_dir / _IDS, directory / "ids.txt")

    def _lay_out(
        self, start: int, end: int, indptr: np.ndarray, first_pair: np.ndarray, norm: np.ndarray, idf: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and document numbers of terms ``start``..``end`` in CSC order (one pass over the pairs)."""
        base = int(indptr[start])
        data = np.empty(int(indptr[end]) - base, dtype=np.float32)
        rows = np.empty(len(data), dtype=np.int32)
        heads = indptr[start:end] - base
        n_docs = len(first_pair) - 1
        with open(self.work_dir / _PAIRS, "rb") as fh:
            for d0 in range(0, n_docs, _DOCS_PER_READ):
                d1 = min(n_docs, d0 + _DOCS_PER_READ)
                count = int(first_pair[d1] - first_pair[d0])
                pairs = np.fromfile(fh, dtype=np.int32, count=2 * count).reshape(-1, 2)
                doc = np.repeat(np.arange(d0, d1, dtype=np.int64), np.diff(first_pair[d0 : d1 + 1]))
                keep = (pairs[:, 0] >= start) & (pairs[:, 0] < end)
                term, tf, doc = pairs[keep, 0] - start, pairs[keep, 1].astype(np.float64), doc[keep]
                score = (idf[term + start] * (tf / (norm[doc] + tf))).astype(np.float32)
                # Stable by term: documents stay ascending within each term, as bm25s lays them out.
                order = np.argsort(term, kind="stable")
                term, score, doc = term[order], score[order], doc[order]
                rank = np.arange(len(term)) - np.searchsorted(term, term, side="left")
                where = heads[term] + rank
                data[where] = score
                rows[where] = doc
                heads += np.bincount(term, minlength=end - start)
        return data, rows
