"""The second-stage reranker: trained on the site for a few steps, saved, loaded, and served in search's order."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sitetune.config import RETRIEVAL_PAIRS, RerankerKind, RerankTrainConfig, SearchConfig
from sitetune.corpus import Corpus
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.index import build_index
from sitetune.models import base_model_path
from sitetune.pairs import build_pairs
from sitetune.rerank import RERANKER_DIR, has_reranker, load_reranker
from sitetune.rerank.late import LateInteractionReranker
from sitetune.rerank.train import SUMMARY_FILE, mine_rows, train_reranker, write_card_section
from sitetune.search import Searcher, hybrid_rank

#: A few steps of a small batch: the test checks the machinery, not the quality (benchmarks/rerank.py does).
FEW = RerankTrainConfig(steps=2, batch_size=2, in_page_negatives=1, cross_page_negatives=1, in_batch_negatives=0,
                        max_length=96)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Corpus]:
    """The bundled sample site, crawled."""
    d = tmp_path_factory.mktemp("rerank-site")
    crawl_folder(sample_site_dir(), d / "corpus.csv", progress=False)
    return d, Corpus.load(d / "corpus.csv")


@pytest.fixture(scope="module")
def model(site: tuple[Path, Corpus]) -> Path:
    """A model folder (the base bi-encoder) with a reranker trained a few steps on the sample site."""
    d, corpus = site
    folder = d / "model"
    shutil.copytree(base_model_path(), folder)
    pairs = build_pairs(corpus.records, RETRIEVAL_PAIRS)
    result = train_reranker(pairs.dataset, folder, folder, FEW)
    write_card_section(folder, result)
    return folder


@pytest.fixture(scope="module")
def store(site: tuple[Path, Corpus], model: Path) -> Path:
    d, _ = site
    build_index(d / "corpus.csv", model, d / "store", progress=False)
    return d / "store"


@pytest.fixture()
def searcher(store: Path) -> Iterator[Searcher]:
    with Searcher.open(store, config=replace(SearchConfig(), rerank_weight=100.0, rerank_depth=5)) as s:
        yield s


def test_mined_rows_hold_in_page_then_cross_page_negatives(site: tuple[Path, Corpus]) -> None:
    _, corpus = site
    pairs = build_pairs(corpus.records, RETRIEVAL_PAIRS)
    rows = mine_rows(pairs.dataset, "base", FEW, 12)
    assert 0 < len(rows["anchor"]) <= 12
    assert set(rows) == {"anchor", "positive", "negative_1", "negative_2"}
    for pos, in_page, cross in zip(rows["positive"], rows["negative_1"], rows["negative_2"], strict=True):
        page = pos.split(" | ")[0]  # the titled document form: "<page> | <section>\n<text>"
        assert in_page != pos and cross != pos
        assert in_page.startswith(page + " | ")
        assert not cross.startswith(page + " | ")


def test_a_few_training_steps_save_a_loadable_reranker_with_its_card_section(model: Path) -> None:
    folder = model / RERANKER_DIR
    assert has_reranker(model) and not has_reranker(base_model_path())
    assert (folder / SUMMARY_FILE).is_file() and (folder / "loss.png").is_file()
    card = (model / "README.md").read_text()
    assert "## Reranker" in card and "| step | loss |" in card
    reranker = load_reranker(model)
    assert reranker is not None and reranker.kind is RerankerKind.CROSS_ENCODER
    scores = reranker.scores("What are the entry requirements?", ["Admission | Entry requirements\nA degree.",
                                                                 "Campus | Housing\nRooms are shared."])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert load_reranker(base_model_path()) is None


def test_search_serves_the_reranker_order_of_the_top_candidates(searcher: Searcher, store: Path) -> None:
    assert searcher.reranker is not None and searcher.reranking
    assert "reranker: cross-encoder order of the top 5" in searcher.describe()
    with Searcher.open(store, config=SearchConfig(rerank=False)) as plain:
        assert plain.reranker is None and "reranker: off" in plain.describe()
        for query in ("What are the entry requirements?", "tuition fee", "when is the deadline"):
            fused = [r for r, _ in plain.rank(query)[0]]
            reranked = [r for r, _ in searcher.rank(query)[0]]
            top = fused[:5]
            expected = [top[i] for i in np.argsort(-searcher.rerank_scores(query, top), kind="stable")]
            # With a dominant weight the reranker decides the top 5; the rest keeps the fused order.
            assert reranked[:5] == expected
            assert reranked[5:] == fused[5:]
            hits = searcher.search(query, k=3)
            assert [h.chunk_id for h in hits] == [searcher.reader.chunks[r].chunk_id for r in expected[:3]]


def test_a_zero_weight_or_no_rerank_leaves_the_fused_order(store: Path) -> None:
    with Searcher.open(store, config=replace(SearchConfig(), rerank_weight=0.0)) as s:
        assert s.reranker is not None and not s.reranking
    with Searcher.open(store, config=replace(SearchConfig(), rerank=False, rerank_weight=1.0)) as s:
        assert s.reranker is None and not s.reranking


def test_hybrid_rank_counts_the_reranker_only_when_weighted() -> None:
    cfg = SearchConfig(rrf_k=5, dense_weight=1.0, bm25_weight=1.0, program_boost=0.0, rerank_weight=0.0)
    assert [i for i, _ in hybrid_rank(["a", "b"], ["b", "a"], cfg, rerank=["b", "a"])] == ["a", "b"]
    weighted = replace(cfg, rerank_weight=1.0)
    assert [i for i, _ in hybrid_rank(["a", "b"], ["b", "a"], weighted, rerank=["b", "a"])] == ["b", "a"]


def test_late_interaction_prefers_the_section_holding_the_question_words() -> None:
    late = LateInteractionReranker("base")
    docs = ["Campus | Housing\nRooms are let by the term. Kitchens are shared.",
            "Admission | Language\nApplicants must submit an IELTS score of at least 6.5 overall.",
            "Careers | Jobs\nGraduates work in consulting and finance."]
    scores = late.scores("what IELTS score do applicants need", docs)
    assert int(np.argmax(scores)) == 1
    assert np.allclose(scores, late.scores("what IELTS score do applicants need", docs), atol=1e-3)


def test_cli_search_accepts_the_rerank_flags(store: Path, searcher: Searcher) -> None:
    import json

    from typer.testing import CliRunner

    from sitetune.cli.main import app

    def ids(*flags: str) -> list[str]:
        result = CliRunner().invoke(app, ["search", "What are the entry requirements?", "--store", str(store),
                                          "-k", "5", "--json", *flags])
        assert result.exit_code == 0, result.output
        return [h["chunk_id"] for h in json.loads(result.stdout[result.stdout.index("{") :])["results"]]

    # The shipped weight is 0: with or without the reranker loaded, search serves the fused order.
    plain = ids("--no-rerank")
    assert ids("--rerank", "--rerank-depth", "5") == plain
    searcher.config = replace(SearchConfig(), rerank_weight=0.0)
    assert plain == [h.chunk_id for h in searcher.search("What are the entry requirements?", k=5)]


def test_train_with_reranker_trains_both_into_one_model_folder(site: tuple[Path, Corpus], tmp_path: Path) -> None:
    from sitetune.config import RETRIEVAL_RECIPE
    from sitetune.train import train

    d, _ = site
    lines: list[str] = []
    out = tmp_path / "model"
    config = replace(RETRIEVAL_RECIPE, max_steps=1, batch_size=8, max_seq_length=64, logging_at_least=None)
    train(config, out=out, corpus=d / "corpus.csv", progress=False, log=lines.append, reranker=FEW)
    assert (out / "modules.json").is_file() and has_reranker(out)
    assert "## Reranker" in (out / "README.md").read_text()
    assert any(line.startswith("reranker -> ") for line in lines)
