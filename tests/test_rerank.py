"""The second-stage reranker: trained on the site for a few steps, saved, loaded, and served in search's order."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sitetune.config import (
    RETRIEVAL_PAIRS,
    EncoderConfig,
    Precision,
    RerankerKind,
    RerankTrainConfig,
    SearchConfig,
)
from sitetune.corpus import Corpus
from sitetune.crawl import crawl_folder, sample_site_dir
from sitetune.encode import ExportError
from sitetune.index import build_index
from sitetune.models import base_model_path, cpu_supports_bf16
from sitetune.pairs import build_pairs
from sitetune.rerank import RERANKER_DIR, has_reranker, load_reranker, reranker_documents
from sitetune.rerank.cross import CrossEncoderReranker
from sitetune.rerank.late import LateInteractionReranker
from sitetune.rerank.openvino_backend import OpenVINOCrossEncoderReranker, reranker_export_dir
from sitetune.rerank.train import SUMMARY_FILE, listwise_loss, mine_rows, train_reranker, write_card_section
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
def model(site: tuple[Path, Corpus], base_encoder: Any) -> Path:
    """A model folder (the base bi-encoder) with a reranker trained a few steps on the sample site.

    The bi-encoder's OpenVINO export is base's (made when the session's base encoder loaded; exports are
    checked against the weights' hash, and these are base's weights), so only the reranker is exported here.
    """
    from sitetune.encode.export import export_dir

    d, corpus = site
    folder = d / "model"
    shutil.copytree(base_model_path(), folder)
    shutil.copytree(export_dir(base_encoder.model_path, "openvino"), export_dir(folder, "openvino"))
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


def test_the_mini_batched_loss_equals_the_one_pass_loss_and_its_gradients() -> None:
    """``mini_batch_size`` changes the memory a step takes, not what it learns (dropout off to compare)."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    anchors = ["what ielts score do i need", "when is the deadline", "is there a scholarship"]
    positives = ["IELTS 7.0 overall, no band below 6.5.", "Apply before 1 March.", "Scholarships for EU students."]
    negatives = [["The campus has a library."], ["Rooms are shared."], ["The programme lasts two years."]]
    inputs = [anchors, positives, [n[0] for n in negatives]]

    def loss_and_gradient(config: RerankTrainConfig) -> tuple[float, torch.Tensor]:
        torch.manual_seed(0)
        model = CrossEncoder(str(base_model_path()), num_labels=1, max_length=64, local_files_only=True)
        model.eval()  # no dropout: both ways see the same network
        loss = listwise_loss(model, config)
        value = loss(inputs, torch.zeros(len(anchors)))
        value.backward()
        head = next(p for name, p in model.model.named_parameters() if "classifier.weight" in name)
        first = next(p for name, p in model.model.named_parameters() if "layer.0.attention" in name)
        assert head.grad is not None and first.grad is not None
        return float(value.detach()), torch.cat([head.grad.flatten(), first.grad.flatten()])

    for in_batch in (0, 1):
        config = replace(FEW, in_batch_negatives=in_batch)
        whole = loss_and_gradient(replace(config, mini_batch_size=None))
        mini = loss_and_gradient(replace(config, mini_batch_size=2))  # 6 or 9 pairs in passes of 2
        assert whole[0] == pytest.approx(mini[0], abs=1e-5)
        assert torch.allclose(whole[1], mini[1], atol=1e-5), float((whole[1] - mini[1]).abs().max())
        assert float(whole[1].abs().max()) > 0  # the comparison is not between two zero gradients


def test_search_serves_the_reranker_order_of_the_top_candidates(searcher: Searcher, store: Path) -> None:
    assert searcher.reranker is not None and searcher.reranking
    assert "reranker: cross-encoder order of the top 5" in searcher.describe()
    with Searcher.open(store, config=SearchConfig(rerank=False)) as plain:
        assert plain.reranker is None and "reranker: off" in plain.describe()
        for query in ("What are the entry requirements?", "tuition fee", "when is the deadline"):
            fused = [r for r, _ in plain.rank(query)]
            reranked = [r for r, _ in searcher.rank(query)]
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


# --- The cross-encoder on OpenVINO: exported beside it, checked against its weights, served. -------------

#: Candidates of every length: a short one, one the 96-token limit truncates, and one of a single word.
DOCS = [
    "Admission | Entry requirements\nApplicants need a bachelor's degree and an IELTS score of 6.5.",
    "Campus | Housing\n" + "Rooms are let by the term and kitchens are shared between students. " * 30,
    "Fees | Tuition\nTuition is free for EU students; others pay per year.",
    "x",
]
FP32 = EncoderConfig(precision=Precision.FP32, threads=1)


def _cli(*argv: str) -> Any:
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    return CliRunner().invoke(app, list(argv))


@pytest.fixture(scope="module")
def exported(model: Path) -> dict[str, Any]:
    """``sitetune export MODEL --backend openvino --json``: the bi-encoder's export and the reranker's."""
    import json

    result = _cli("export", str(model), "--backend", "openvino", "--json")
    assert result.exit_code == 0, result.output
    manifest: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return manifest


def test_export_writes_the_rerankers_openvino_files_with_a_manifest_of_its_weights(
    model: Path, exported: dict[str, Any]
) -> None:
    from sitetune.encode.export import model_fingerprint

    folder = model / RERANKER_DIR
    reranker = exported["reranker"]
    assert Path(reranker["path"]) == reranker_export_dir(folder) == folder / "sitetune-export" / "openvino"
    assert reranker["backend"] == "openvino" and reranker["kind"] == "cross-encoder"
    assert reranker["model_sha256"] == model_fingerprint(folder) != exported["model_sha256"]
    assert {"model.xml", "model.bin"} <= set(reranker["files"])
    assert all((Path(reranker["path"]) / name).is_file() for name in reranker["files"])
    assert reranker["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]
    checked = _cli("export", str(model), "--backend", "openvino", "--check")
    assert checked.exit_code == 0 and "verified the reranker for openvino" in checked.output
    # --no-reranker leaves the reranker's export alone (and out of the manifest).
    plain = _cli("export", str(model), "--backend", "openvino", "--no-reranker", "--json")
    assert plain.exit_code == 0 and '"reranker"' not in plain.stdout


def test_openvino_scores_equal_torchs(model: Path, exported: dict[str, Any]) -> None:
    folder = model / RERANKER_DIR
    query = "what IELTS score do applicants need"
    torch_fp32 = CrossEncoderReranker(folder, FP32)
    ov_fp32 = OpenVINOCrossEncoderReranker(folder, FP32)
    assert ov_fp32.backend == "openvino" and ov_fp32.precision == "fp32"
    expected = torch_fp32.scores(query, DOCS)
    assert np.allclose(ov_fp32.scores(query, DOCS), expected, atol=1e-4, rtol=1e-4)
    # One candidate alone (no padding) scores what it scores among the others.
    assert np.allclose(ov_fp32.scores(query, DOCS[1:2]), expected[1:2], atol=1e-4)
    assert ov_fp32.scores(query, []).shape == (0,)
    if cpu_supports_bf16():
        bf16 = OpenVINOCrossEncoderReranker(folder, replace(FP32, precision=Precision.BF16))
        assert bf16.precision == "bf16"
        assert np.allclose(bf16.scores(query, DOCS), expected, atol=0.05)


def test_the_encoder_backend_picks_the_rerankers(model: Path, exported: dict[str, Any]) -> None:
    on = {backend: load_reranker(model, None, replace(FP32, backend=backend)) for backend in
          ("auto", "openvino", "openvino-int8", "torch", "sentence-transformers")}
    assert {b: getattr(r, "backend", None) for b, r in on.items()} == {
        "auto": "openvino", "openvino": "openvino", "openvino-int8": "openvino",
        "torch": "torch", "sentence-transformers": "torch",
    }


def _shift_head(folder: Path, by: float) -> None:
    """Add ``by`` to the scoring head's bias in the saved weights (every score moves by exactly that)."""
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    (key,) = [k for k in weights if k.endswith("classifier.bias")]
    weights[key] = weights[key] + by
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def test_a_stale_or_missing_export_is_refused_rebuilt_or_replaced_by_torch_never_used(
    model: Path, exported: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    folder = copy / RERANKER_DIR
    query = "tuition fee"
    before = OpenVINOCrossEncoderReranker(folder, FP32).scores(query, DOCS)
    _shift_head(folder, 1.0)  # the reranker changed after its export
    for backend in ("openvino", "auto"):
        with pytest.raises(ExportError, match="made from other weights") as err:
            load_reranker(copy, None, replace(FP32, backend=backend))
        assert f"sitetune export {copy} --backend openvino" in str(err.value)
    checked = _cli("export", str(copy), "--backend", "openvino", "--check")
    assert checked.exit_code == 2 and "made from other weights" in checked.output
    # --fallback-to-torch reranks with the new weights on torch, not with the stale export.
    fallback = load_reranker(copy, None, replace(FP32, backend="openvino", fallback=True))
    assert isinstance(fallback, CrossEncoderReranker)
    assert np.allclose(fallback.scores(query, DOCS), before + 1.0, atol=1e-4)
    # Exported again, OpenVINO scores the new weights.
    assert _cli("export", str(copy), "--backend", "openvino").exit_code == 0
    rebuilt = load_reranker(copy, None, replace(FP32, backend="openvino"))
    assert isinstance(rebuilt, OpenVINOCrossEncoderReranker)
    assert np.allclose(rebuilt.scores(query, DOCS), before + 1.0, atol=1e-4)
    # No export: backend openvino refuses; auto exports it on first use.
    shutil.rmtree(reranker_export_dir(folder))
    with pytest.raises(ExportError, match="no 'openvino' export"):
        load_reranker(copy, None, replace(FP32, backend="openvino"))
    auto = load_reranker(copy, None, replace(FP32, backend="auto"))
    assert isinstance(auto, OpenVINOCrossEncoderReranker) and (reranker_export_dir(folder) / "manifest.json").is_file()


def test_the_served_order_with_reranking_on_comes_from_the_openvino_export(
    store: Path, model: Path, exported: dict[str, Any], searcher: Searcher
) -> None:
    from fastapi.testclient import TestClient

    from sitetune.serve import create_app

    # The default encoder backend (auto) serves the reranker's OpenVINO export.
    assert isinstance(searcher.reranker, OpenVINOCrossEncoderReranker) and searcher.reranking
    exported_reranker = OpenVINOCrossEncoderReranker(model / RERANKER_DIR, searcher.reranker.config)
    with Searcher.open(store, config=SearchConfig(rerank=False)) as plain:
        client = TestClient(create_app(searcher, model_name="model"))
        for query in ("What are the entry requirements?", "tuition fee"):
            top = [r for r, _ in plain.rank(query)][:5]
            docs = reranker_documents([searcher.reader.chunks[r] for r in top])
            expected = [top[i] for i in np.argsort(-exported_reranker.scores(query, docs), kind="stable")]
            response = client.get("/search", params={"q": query, "k": 3})
            assert response.status_code == 200, response.text
            served = [h["chunk_id"] for h in response.json()["results"]]
            assert served == [searcher.reader.chunks[r].chunk_id for r in expected[:3]]


def test_cli_search_rerank_weight_turns_the_reranker_on(store: Path, searcher: Searcher) -> None:
    import json

    query = "What are the entry requirements?"

    def ids(*flags: str) -> list[str]:
        result = _cli("search", query, "--store", str(store), "-k", "5", "--json", *flags)
        assert result.exit_code == 0, result.output
        return [h["chunk_id"] for h in json.loads(result.stdout[result.stdout.index("{") :])["results"]]

    searcher.config = replace(SearchConfig(), rerank_weight=100.0, rerank_depth=5)
    assert ids("--rerank-weight", "100", "--rerank-depth", "5") == [h.chunk_id for h in searcher.search(query, k=5)]
    assert _cli("search", query, "--store", str(store), "--rerank-weight", "-1").exit_code == 2
