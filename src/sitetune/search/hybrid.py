"""Hybrid search: dense and BM25 rankings fused by weighted reciprocal rank fusion, programme-aware.

:class:`Searcher` is what ``sitetune search``, the answerer and the HTTP API use; :func:`hybrid_rank`
is the fusion step alone, for the evaluation to score rankings exactly the way search does.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import numpy as np

from sitetune.config import EncoderConfig, SearchConfig
from sitetune.corpus import Chunk, Occurrence
from sitetune.encode import Encoder, load_encoder
from sitetune.errors import InputError
from sitetune.index import StoreError, StoreReader, open_store
from sitetune.index.identity import model_fingerprint
from sitetune.models import resolve_model_path
from sitetune.rerank import Reranker, load_reranker, reranker_documents
from sitetune.search.programs import ProgramDetector
from sitetune.search.sentence_stage import SentenceVectors, max_sim_order
from sitetune.search.spelling import QuerySpeller, tokenizer_words
from sitetune.search.types import PagePlace, Query, SearchHit
from sitetune.sectionkind import SectionSignals, section_signals
from sitetune.siteanalysis import analyse_site


def hybrid_rank(
    dense: Sequence[str],
    bm25: Sequence[str],
    config: SearchConfig,
    boosted: Collection[str] = (),
    sentence: Sequence[str] = (),
    rerank: Sequence[str] = (),
    intent: tuple[Sequence[str], Sequence[str]] = ((), ()),
    prior: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse the dense, BM25 (and second-stage sentence and reranker) rankings and add the programme boost.

    Args:
        dense: Ids by dense similarity, best first (``config.candidates`` deep).
        bm25: Ids by BM25 score, best first (only ids with a positive score).
        config: Weights, the RRF constant and the boost.
        boosted: Ids on a page the query names; each gets ``config.program_boost`` added.
        sentence: Ids of the top first-stage candidates by their best sentence (empty: no second stage).
        rerank: Ids of the top fused candidates in the reranker's order (empty: no reranker).
        intent: Dense and BM25 ids of a named template page's sections by what the query asks of it
            (:meth:`Searcher.intent_rankings`), each weighted ``config.intent_weight`` times its kind's weight.
        prior: Added to an id's fused score (negative: the signpost and scope penalties of
            :meth:`Searcher.prior`).

    Returns:
        (id, score) pairs, best first.
    """
    from sitetune.search.fusion import reciprocal_rank_fusion

    rankings, weights = [dense, bm25], [config.dense_weight, config.bm25_weight]
    if sentence and config.sentence_weight:
        rankings.append(sentence)
        weights.append(config.sentence_weight)
    if rerank and config.rerank_weight:
        rankings.append(rerank)
        weights.append(config.rerank_weight)
    if config.intent_weight:
        for ranking, weight in zip(intent, (config.dense_weight, config.bm25_weight), strict=True):
            if ranking:
                rankings.append(ranking)
                weights.append(config.intent_weight * weight)
    fused = dict(reciprocal_rank_fusion(rankings, weights=weights, k=config.rrf_k))
    if config.program_boost and boosted:
        for doc_id in boosted:
            fused[doc_id] = fused.get(doc_id, 0.0) + config.program_boost
    if prior:
        for doc_id in fused:
            fused[doc_id] += prior.get(doc_id, 0.0)
    return sorted(fused.items(), key=lambda item: -item[1])


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


class Searcher:
    """Search over one store with the model that built it.

    Args:
        reader: The opened store.
        encoder: An encoder for the store's model (checked against the store's fingerprint).
        config: Fusion weights, depth and programme boost.

    Build one with :meth:`open`. Results are unique by text: each hit is one chunk, shown at the
    occurrence on the filtered or named page when there is one, else at its first page, with the
    other pages it appears on in ``also_on``.
    """

    def __init__(
        self,
        reader: StoreReader,
        encoder: Encoder,
        config: SearchConfig | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        manifest = reader.manifest
        fingerprint = model_fingerprint(encoder.model_path)
        if fingerprint != manifest.model_fingerprint:
            raise StoreError(
                f"store {reader.uri} was built with the model at {manifest.model_path}; the query model "
                f"{encoder.model_path} is a different model: search with `model={manifest.model_path}` "
                f"or re-index with this model"
            )
        if encoder.dim != manifest.dim:
            raise StoreError(
                f"store {reader.uri} holds {manifest.dim}-d vectors; the model gives {encoder.dim}-d"
            )
        self.reader = reader
        self.encoder = encoder
        self.config = config or SearchConfig()
        chunks = reader.chunks
        self.pages: list[str] = list(dict.fromkeys(o.page_name for c in chunks for o in c.occurrences))
        self._page_key = {_norm(p): p for p in self.pages}
        self._rows_of_page: dict[str, np.ndarray] = {}
        rows: dict[str, list[int]] = {}
        for i, chunk in enumerate(chunks):
            for page in chunk.pages:
                rows.setdefault(page, []).append(i)
        self._rows_of_page = {p: np.asarray(r, dtype=np.int64) for p, r in rows.items()}
        # Read from the store (written at index time); derived here only for stores written before that.
        site = reader.generation.site or analyse_site(chunks)
        # The site's own name and words on nearly every page name no programme ("Jobs at <site>").
        self.vocabulary = site.vocabulary
        #: Pages built on the site's shared section template (programme pages): ``config.intent_weight``.
        self.template_pages = site.template_pages
        self.detector = ProgramDetector(
            self.pages, common_words=self.vocabulary.common_words, aliases=site.aliases
        )
        #: Each chunk's signpost probability, scope and page references, computed when the store was built.
        self.signals: SectionSignals = reader.generation.signals or section_signals(chunks)
        # Built here, not on first use, so a server's first question does not pay for it.
        self.speller = QuerySpeller((), tokenizer_words(encoder.model_path), site_counts=site.word_counts)
        #: Sentence vectors of the second stage, shared with the answerer (one encoding per sentence).
        self.sentences = SentenceVectors(encoder)
        #: The second-stage reranker (the model folder's cross-encoder), used when ``config.rerank``.
        self.reranker = reranker

    @classmethod
    def open(
        cls,
        store: str | Path,
        encoder_config: EncoderConfig | None = None,
        model: str | Path | None = None,
        config: SearchConfig | None = None,
        *,
        encoder: Encoder | None = None,
        reranker: Reranker | None = None,
        generation: int | None = None,
    ) -> Searcher:
        """Open a store and the model to query it with.

        Args:
            store: Embedded store directory, ``milvus://PATH.db`` or ``http://HOST:19530``.
            encoder_config: Backend and precision for query encoding.
            model: The query model; default the one recorded in the store. Another model is refused.
            config: Search settings.
            encoder: An already loaded encoder to reuse (its model is checked the same way).
            reranker: A reranker to use; default the model folder's cross-encoder when it has one and
                ``config.rerank`` is on.
            generation: Open exactly this generation of the store (no fallback); default the current one.

        Raises:
            StoreError: No index, no intact generation, or a model other than the store's.
        """
        reader = open_store(store, generation)
        try:
            if encoder is None:
                wanted = model if model is not None else reader.manifest.model_path
                if model is None and not Path(wanted).is_dir():
                    raise StoreError(
                        f"store {store} was built with {wanted}, which no longer exists: pass `model`"
                    )
                encoder = load_encoder(resolve_model_path(wanted), encoder_config)
            cfg = config or SearchConfig()
            if reranker is None and cfg.rerank and cfg.reranker_model is not None:
                from sitetune.rerank.cross import load_cross_encoder

                reranker = load_cross_encoder(resolve_model_path(cfg.reranker_model), encoder_config)
            elif reranker is None and cfg.rerank:
                reranker = load_reranker(encoder.model_path, None, encoder_config)
            return cls(reader, encoder, cfg, reranker)
        except BaseException:
            reader.close()
            raise

    @property
    def model_path(self) -> Path:
        """The folder of the query model."""
        return Path(self.encoder.model_path)

    def describe(self) -> str:
        """The ranking settings in one line, for reports ("weighted RRF k=5: dense 1.0, BM25 0.75, ...")."""
        cfg = self.config
        return (f"weighted RRF (k={cfg.rrf_k}) of dense (weight {cfg.dense_weight}) and BM25 over "
                f"{self.reader.manifest.bm25_fields} (weight {cfg.bm25_weight}), top {cfg.candidates} of each; "
                f"programme boost {cfg.program_boost}; a named template page's sections by the rest of the "
                f"query: weight {cfg.intent_weight}; second stage: "
                + (f"best-sentence ranking of the top {cfg.sentence_depth} (weight {cfg.sentence_weight})"
                   if cfg.sentence_weight else "off")
                + "; reranker: "
                + (f"{self.reranker.kind} order of the top {cfg.rerank_depth} (weight {cfg.rerank_weight})"
                   if self.reranker is not None and self.reranking else "off"))

    @property
    def reranking(self) -> bool:
        """Whether :meth:`rank` uses the reranker (one is loaded, ``config.rerank`` is on, its weight > 0)."""
        cfg = self.config
        return self.reranker is not None and cfg.rerank and cfg.rerank_weight > 0 and cfg.rerank_depth > 0

    def close(self) -> None:
        """Release the store (stops Milvus Lite's server process)."""
        self.reader.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def resolve_page(self, name: str) -> str:
        """The known page name ``name`` means (case and spacing ignored).

        Raises:
            InputError: No such page; the message lists the closest names.
        """
        page = self._page_key.get(_norm(name))
        if page is None:
            # Pages the name mentions as a programme first ("data science"), then look-alike spellings.
            named = self.detector.detect(name)
            close = [
                self._page_key[c]
                for c in difflib.get_close_matches(_norm(name), list(self._page_key), n=5, cutoff=0.4)
            ]
            options = list(dict.fromkeys(named + close))[:6]
            hint = "; closest: " + ", ".join(repr(p) for p in options) if options else ""
            raise InputError(
                f"unknown page {name!r} ({len(self.pages)} pages in the index{hint})", field="page"
            )
        return page

    def normalise_query(self, query: str) -> str:
        """The question as ranking reads it: spelling corrected to the site's words when configured."""
        return self.speller.correct(query) if self.config.correct_spelling else query

    def encode_query(self, query: str) -> np.ndarray:
        """The unit query vector of the normalised question (:meth:`read` does this once per question)."""
        return self._encode_normalised(self.normalise_query(query))

    def _encode_normalised(self, query: str) -> np.ndarray:
        vectors = self.encoder.encode([self.encoder.info.query(query)])
        return np.asarray(vectors[0], dtype=np.float32)

    def read(self, question: str, *, page: str | None = None, vector: np.ndarray | None = None) -> Query:
        """Read a question once: corrected, encoded, the pages it names found; every later step takes this.

        Args:
            question: The question (must not be blank).
            page: Only sections of this page (a known page name; case and spacing ignored).
            vector: The question's vector if already encoded (:meth:`encode_query` of the same text; the
                evaluation encodes its questions ahead).

        Raises:
            InputError: Blank question or an unknown page.
        """
        if not question or not question.strip():
            raise InputError("the query is empty", field="query")
        resolved = self.resolve_page(page) if page is not None else None
        read_as = self.normalise_query(question)
        qv = self._encode_normalised(read_as) if vector is None else vector
        named = self.detector.detect(read_as, abbreviations=self.config.abbreviations)
        pages = tuple(p for p in named if resolved is None or p == resolved)
        return Query(question, read_as, qv, pages, resolved)

    def dense_rows(self, query_vector: np.ndarray, rows: np.ndarray | None = None) -> list[int]:
        """Rows by dense similarity, best first, ``config.candidates`` deep (within ``rows`` if given)."""
        return [r for r, _ in self.reader.dense(query_vector, self.config.candidates, rows)]

    def bm25_rows(self, query: str, rows: np.ndarray | None = None) -> list[int]:
        """Rows by BM25 score, best first, ``config.candidates`` deep, only rows with a positive score."""
        scores = self._bm25_scores(query)
        if rows is not None:
            masked = np.zeros_like(scores)
            masked[rows] = scores[rows]
            scores = masked
        depth = min(self.config.candidates, scores.size)
        top = np.argpartition(-scores, depth - 1)[:depth] if depth else np.zeros(0, dtype=np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(r) for r in top if scores[r] > 0]

    def rank(self, query: Query | str) -> list[tuple[int, float]]:
        """Fused (row, score) pairs best first, ``config.candidates`` deep.

        This is the one ranking function: :meth:`search`, the answerer, the HTTP API and ``sitetune
        evaluate``'s served row all call it.

        Args:
            query: The question, read by :meth:`read` (a string is read here).
        """
        query = self.read(query) if isinstance(query, str) else query
        cfg = self.config
        rows = None if query.page is None else self._rows_of_page[query.page]
        dense_rows = self.dense_rows(query.vector, rows)
        bm25_rows = self.bm25_rows(query.read_as, rows)
        named = query.pages
        boosted: set[str] = set()
        if named and cfg.program_boost:
            boosted = {str(r) for p in named for r in self._rows_of_page.get(p, ())}
            if rows is not None:
                boosted &= {str(r) for r in rows}
        dense_ids, bm25_ids = [str(r) for r in dense_rows], [str(r) for r in bm25_rows]
        templated = [p for p in named if p in self.template_pages]
        intent = (self.intent_rankings(query.read_as, templated, rows) if templated and cfg.intent_weight
                  else ([], []))
        prior = self.prior(set(dense_ids) | set(bm25_ids), named=bool(named))
        fused = hybrid_rank(dense_ids, bm25_ids, cfg, boosted, intent=intent, prior=prior)
        sentence_ids: list[str] = []
        if cfg.sentence_weight and cfg.sentence_depth:
            top = [int(r) for r, _ in fused[: cfg.sentence_depth]]
            sentence_ids = [str(top[i]) for i in self.sentence_order(query.vector, top)]
            fused = hybrid_rank(dense_ids, bm25_ids, cfg, boosted, sentence_ids, intent=intent, prior=prior)
        if self.reranking:
            top = [int(r) for r, _ in fused[: cfg.rerank_depth]]
            rerank_ids = [str(top[i]) for i in self.rerank_order(query.read_as, top)]
            fused = hybrid_rank(dense_ids, bm25_ids, cfg, boosted, sentence_ids, rerank_ids, intent, prior)
        return [(int(r), s) for r, s in fused[: max(cfg.candidates, 1)]]

    def prior(self, ids: Collection[str], *, named: bool) -> dict[str, float]:
        """The query's penalties of candidate ``ids`` (negative scores to add to their fused scores).

        Signposts and testimonials always; sections found only on one programme's page when the question
        names no programme (``named`` False).
        """
        cfg, signals = self.config, self.signals
        out: dict[str, float] = {}
        for doc_id in ids:
            row = int(doc_id)
            penalty = cfg.signpost_penalty * signals.signpost[row]
            if signals.testimonial[row]:
                penalty += cfg.testimonial_penalty
            if not named and signals.specific[row]:
                penalty += cfg.scope_penalty
            if penalty:
                out[doc_id] = -float(penalty)
        return out

    def intent_rankings(
        self, query: str, named: Sequence[str], rows: np.ndarray | None = None
    ) -> tuple[list[str], list[str]]:
        """Dense and BM25 rankings of the named pages' sections by what the query asks of them.

        The query without the words that name the pages ("what bachelor do I need for" of "what bachelor
        do I need for Supply Chain Management"), so the page name, which every section of the page
        shares, does not pull the sections that repeat it above the one that answers.
        """
        residual = self.detector.residual(query, named)
        if not residual:
            return [], []
        named_rows = np.unique(np.concatenate([self._rows_of_page[p] for p in named]))
        if rows is not None:
            named_rows = np.intersect1d(named_rows, rows)
        if named_rows.size == 0:
            return [], []
        dense = self.dense_rows(self._encode_normalised(residual), named_rows)
        return [str(r) for r in dense], [str(r) for r in self.bm25_rows(residual, named_rows)]

    def sentence_order(self, query_vector: np.ndarray, rows: Sequence[int]) -> list[int]:
        """Indexes into ``rows`` by each chunk's best sentence (the second stage), best first."""
        chunks = self.reader.chunks
        sections = [(chunks[r].page_name, chunks[r].section_title, chunks[r].text) for r in rows]
        return max_sim_order(query_vector, sections, self.sentences)

    def rerank_scores(self, query: str, rows: Sequence[int]) -> np.ndarray:
        """The reranker's score of each row for ``query`` (higher is better).

        Raises:
            StoreError: The searcher has no reranker.
        """
        if self.reranker is None:
            raise StoreError("this searcher has no reranker")
        chunks = self.reader.chunks
        return self.reranker.scores(query, reranker_documents([chunks[r] for r in rows]))

    def rerank_order(self, query: str, rows: Sequence[int]) -> list[int]:
        """Indexes into ``rows`` by the reranker's score, best first."""
        scores = self.rerank_scores(query, rows)
        return [int(i) for i in np.argsort(-scores, kind="stable")]

    def _bm25_scores(self, query: str) -> np.ndarray:
        try:
            return self.reader.bm25.scores(query)
        except (ValueError, IndexError, KeyError):  # a query of stop words only has no tokens
            return np.zeros(len(self.reader.chunks), dtype=np.float32)

    def search(self, query: Query | str, k: int | None = None, page: str | None = None) -> list[SearchHit]:
        """The top ``k`` hits for ``query``, unique by text.

        Args:
            query: The question, read by :meth:`read` (a string is read here, with ``page``).
            k: Results wanted (default ``config.k``).
            page: Only sections of this page, for a string ``query`` (a :class:`Query` carries its own).

        Raises:
            InputError: Blank query, k < 1, or an unknown page.
        """
        k = self.config.k if k is None else k
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}", field="k")
        query = self.read(query, page=page) if isinstance(query, str) else query
        fused = self.rank(query)
        prefer = [query.page] if query.page else list(query.pages)
        hits = [self._hit(self.reader.chunks[row], score, prefer) for row, score in fused[:k]]
        if hits and query.page is None:
            followed = self.follow(query, hits[0])
            if followed is not None:
                place = PagePlace(followed.page_name, followed.section_title, followed.url)
                hits[0] = replace(hits[0], see_also=(place,))
        return hits

    def follow(self, query: Query, hit: SearchHit) -> SearchHit | None:
        """The section of a page ``hit`` refers to ("see English level A") that best matches ``query``.

        A section that names another page of the site for the detail answers in two steps; this is the
        second. ``None`` when the hit's text names no other page or that section is already ``hit``.
        """
        row = self.reader.row_of.get(hit.chunk_id)
        refers = self.signals.refers[row] if row is not None else ()
        pages = [p for p in refers if p in self._rows_of_page]
        if not pages:
            return None
        rows = np.unique(np.concatenate([self._rows_of_page[p] for p in pages]))
        best = self.reader.dense(query.vector, 1, rows)
        if not best or best[0][0] == row:
            return None
        best_row, cosine = best[0]
        return self._hit(self.reader.chunks[best_row], cosine, pages)

    @staticmethod
    def _hit(chunk: Chunk, score: float, prefer: Sequence[str]) -> SearchHit:
        shown: Occurrence = chunk.home
        for page in prefer:
            match = next((o for o in chunk.occurrences if o.page_name == page), None)
            if match is not None:
                shown = match
                break
        others: dict[str, PagePlace] = {}
        for o in chunk.occurrences:
            if o.page_name != shown.page_name and o.page_name not in others:
                others[o.page_name] = PagePlace(o.page_name, o.section_title, o.url)
        return SearchHit(
            chunk.chunk_id,
            chunk.text,
            round(score, 6),
            shown.page_name,
            shown.section_title,
            shown.url,
            tuple(others.values()),
        )
