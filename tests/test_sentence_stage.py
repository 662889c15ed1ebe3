"""The second stage: candidates ranked by their best sentence, as a third voter in the served fusion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sitetune.config import SearchConfig
from sitetune.corpus import Corpus
from sitetune.index import build_index
from sitetune.recordio import write_records
from sitetune.search import Searcher, hybrid_rank
from sitetune.search.sentence_stage import SentenceVectors, max_sim_order
from sitetune.sentences import split_sentences


def test_a_section_holding_the_query_as_one_sentence_ranks_first(base_encoder: object) -> None:
    cache = SentenceVectors(base_encoder)  # type: ignore[arg-type]
    wanted = "Applicants must submit an IELTS score of at least 6.5 overall."
    sections = [
        ("Page A", "Campus", "The campus has a large library. Students enjoy the sports centre. Parking is free."),
        ("Page B", "Admission", "We welcome applicants from every country. " + wanted + " Late forms are not read."),
        ("Page C", "Housing", "Rooms are let by the term. Kitchens are shared by six students."),
    ]
    query = base_encoder.encode([base_encoder.info.query(wanted)])[0]  # type: ignore[attr-defined]
    order = max_sim_order(np.asarray(query), sections, cache)
    assert order[0] == 1 and sorted(order) == [0, 1, 2]
    # Every sentence of every section was encoded once and is now cached.
    assert len(cache) == sum(len(split_sentences(text)) for _, _, text in sections)
    before = len(cache)
    max_sim_order(np.asarray(query), sections, cache)
    assert len(cache) == before


def test_hybrid_rank_counts_the_sentence_ranking_only_when_weighted() -> None:
    cfg = SearchConfig(rrf_k=5, dense_weight=1.0, bm25_weight=1.0, program_boost=0.0, sentence_weight=0.0)
    # Dense and BM25 tie a and b; the sentence ranking breaks the tie only when it has weight.
    assert [i for i, _ in hybrid_rank(["a", "b"], ["b", "a"], cfg, sentence=["b", "a"])] == ["a", "b"]
    weighted = replace(cfg, sentence_weight=1.0)
    assert [i for i, _ in hybrid_rank(["a", "b"], ["b", "a"], weighted, sentence=["b", "a"])] == ["b", "a"]


@pytest.fixture(scope="module")
def store(cbs_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("stage")
    corpus = d / "slice.jsonl"
    pages = set(cbs_corpus.pages[:6])
    write_records([r for r in cbs_corpus.records if r.page_name in pages], corpus)
    build_index(corpus, "base", d / "store", progress=False)
    return d / "store"


@pytest.fixture(scope="module")
def searcher(store: Path, base_encoder: object) -> Iterator[Searcher]:
    with Searcher.open(store, encoder=base_encoder) as s:  # type: ignore[arg-type]
        yield s


QUERIES = ["When is the application deadline?", "what english test do I need", "career after the master",
           "how are applicants selected", "tuition fee"]


def test_the_stage_reorders_search_and_only_within_its_depth(searcher: Searcher) -> None:
    queries = QUERIES
    searcher.config = replace(SearchConfig(), sentence_weight=0.0)
    try:
        plain = {q: [r for r, _ in searcher.rank(q)] for q in queries}
    finally:
        searcher.config = SearchConfig()
    searcher.config = replace(SearchConfig(), sentence_weight=1.0, sentence_depth=10)
    try:
        staged = {q: [r for r, _ in searcher.rank(q)] for q in queries}
        hits = searcher.search(queries[0], k=5)
    finally:
        searcher.config = SearchConfig()
    assert len(hits) == 5 and len({h.chunk_id for h in hits}) == 5
    assert any(plain[q][:10] != staged[q][:10] for q in queries), "a weighted stage changes some order"
    for q in queries:
        # The stage votes only for first-stage candidates: it reorders the list, it never adds to it.
        assert set(staged[q]) == set(plain[q])
    assert "second stage: best-sentence ranking of the top 10" in replace_config_describe(searcher)


def replace_config_describe(searcher: Searcher) -> str:
    searcher.config = replace(SearchConfig(), sentence_weight=1.0, sentence_depth=10)
    try:
        return searcher.describe()
    finally:
        searcher.config = SearchConfig()


def test_the_cli_sets_the_stage_weight(store: Path, searcher: Searcher) -> None:
    """``--sentence-weight 0`` serves the plain fused order; a large weight lets the stage order its top N."""
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    def python_top(query: str, weight: float) -> list[str]:
        searcher.config = replace(SearchConfig(), sentence_weight=weight)
        try:
            return [h.chunk_id for h in searcher.search(query, k=SearchConfig().sentence_depth)]
        finally:
            searcher.config = SearchConfig()

    # A question whose top candidates the stage reorders (with the weight the CLI will be given).
    query = next(q for q in QUERIES if python_top(q, 0.0) != python_top(q, 100.0))
    runner = CliRunner()

    def cli_top(weight: float) -> list[str]:
        result = runner.invoke(app, ["search", query, "--store", str(store), "-k", str(SearchConfig().sentence_depth),
                                     "--sentence-weight", str(weight), "--json"])
        assert result.exit_code == 0, result.output
        return [hit["chunk_id"] for hit in json.loads(result.stdout)["results"]]

    assert cli_top(0.0) == python_top(query, 0.0)
    assert cli_top(100.0) == python_top(query, 100.0)
    refused = runner.invoke(app, ["search", query, "--store", str(store), "--sentence-weight", "-1"])
    assert refused.exit_code == 2 and "--sentence-weight" in refused.output
