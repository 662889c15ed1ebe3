"""Training, export, index and serve from a base model other than the packaged all-MiniLM-L6-v2.

The base is a tiny BERT built here (32 dimensions, 2 layers, a 128-position limit, a WordPiece vocabulary in
``vocab.txt`` and no ``tokenizer.json``, as older model folders ship): nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.corpus import Corpus
from sitetune.recordio import write_records

runner = CliRunner()
WORDS = [
    "the", "a", "of", "and", "to", "in", "is", "for", "you", "your", "programme", "admission", "deadline", "apply",
    "english", "score", "master", "msc", "business", "students", "application", "requirements", "ielts", "toefl",
    "level", "must", "be", "support", "special",
]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;-/()")


def build_tiny_bert(folder: Path) -> Path:
    """A sentence-transformers model (BERT, mean pooling) with random weights, saved in ``folder``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    raw = folder / "raw"
    raw.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *CHARACTERS, *(f"##{c}" for c in CHARACTERS)]
    (raw / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(raw)
    BertTokenizer(vocab_file=str(raw / "vocab.txt"), do_lower_case=True).save_pretrained(raw)
    transformer = Transformer(str(raw))
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")], device="cpu"
    )
    out = folder / "tiny-bert"
    model.save(str(out))
    # The shape of an older BERT folder: the WordPiece vocabulary only, no fast tokenizer file.
    (out / "tokenizer.json").unlink(missing_ok=True)
    shutil.copyfile(raw / "vocab.txt", out / "vocab.txt")
    return out


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def two_pages(tmp_path_factory: pytest.TempPathFactory, cbs_corpus: Corpus) -> Path:
    pages = set(cbs_corpus.pages[30:32])
    path = tmp_path_factory.mktemp("two-pages") / "pages.jsonl"
    write_records([r for r in cbs_corpus.records if r.page_name in pages], path)
    return path


def test_a_tiny_bert_base_is_trained_exported_indexed_and_served(
    tiny_base: Path, two_pages: Path, tmp_path: Path
) -> None:
    from sitetune.search import Searcher
    from sitetune.serve import create_app

    model, store = tmp_path / "model", tmp_path / "store"
    # The recipe's 256 tokens exceed the base's 128 positions: training keeps to what the base has.
    result = runner.invoke(app, ["train", "--corpus", str(two_pages), "--out", str(model), "--base", str(tiny_base),
                                 "--max-steps", "2", "--batch-size", "8", "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output[-3000:]
    info = json.loads((model / "sitetune.json").read_text())
    assert info["base_model"] == str(tiny_base.resolve()) and info["recipe"] == "retrieval"
    assert f"Fine-tuned from the model folder `{tiny_base.resolve()}`" in (model / "README.md").read_text()
    assert "all-MiniLM-L6-v2" not in (model / "README.md").read_text()

    result = runner.invoke(app, ["export", str(model), "--backend", "openvino", "--json"])
    assert result.exit_code == 0, result.output[-3000:]
    manifest = json.loads(result.stdout[result.stdout.index("{"):])
    assert manifest["dim"] == 32 and manifest["max_length"] == 128
    result = runner.invoke(app, ["index", "--corpus", str(two_pages), "--model", str(model), "--store", str(store),
                                 "--backend", "openvino", "--no-progress"])
    assert result.exit_code == 0, result.output[-3000:]

    from sitetune.config import EncoderConfig

    with Searcher.open(store, EncoderConfig(backend="openvino")) as searcher:
        assert searcher.encoder.dim == 32
        client = TestClient(create_app(searcher, model_name="tiny"))
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["pages"] == 2
        hits = client.get("/search", params={"q": "special support for students"}).json()["results"]
        assert hits and all(h["url"].startswith("https://") for h in hits)
        assert client.post("/answer", json={"question": "What support can students get?"}).status_code == 200

    # A cross-encoder from another folder (the config file's [model] reranker) reranks instead of the model's.
    from sentence_transformers.cross_encoder import CrossEncoder

    from sitetune.config import SearchConfig

    CrossEncoder(str(tiny_base.parent / "raw"), num_labels=1, local_files_only=True).save(str(tmp_path / "ce"))
    search = SearchConfig(reranker_model=str(tmp_path / "ce"), rerank_weight=1.0)
    with Searcher.open(store, EncoderConfig(backend="torch"), config=search) as searcher:
        assert searcher.reranking and searcher.reranker is not None
        assert getattr(searcher.reranker, "folder", None) == tmp_path / "ce"
        assert searcher.search("special support for students", k=3)


def test_the_main_job_trains_from_the_configured_base_and_retrains_when_it_changes(
    tiny_base: Path, two_pages: Path, tmp_path: Path
) -> None:
    from sitetune import pipeline
    from sitetune.config import EncoderConfig

    config = pipeline.MainJobConfig(
        workdir=tmp_path / "job", corpus=two_pages, base_model=str(tiny_base),
        train=dataclasses.replace(pipeline.MAIN_JOB_RECIPE, max_steps=1, threads=1),
        encoder=EncoderConfig(backend="torch"),  # the OpenVINO export is the other test's
    )
    lines: list[str] = []
    first = pipeline.prepare(config, progress=False, log=lines.append)
    assert first.trained and first.train_steps == 1
    assert f"training the retrieval recipe from {tiny_base}" in "\n".join(lines)
    assert json.loads((first.model / "sitetune.json").read_text())["base_model"] == str(tiny_base.resolve())
    assert (tmp_path / "job" / "corpus.sha256").read_text().split()[1] == str(tiny_base.resolve())
    again = pipeline.prepare(config, progress=False, log=lines.append)
    assert not again.trained and again.embedded == 0  # same corpus, same base: reused
    other = tiny_base.parent / "other-base"
    shutil.copytree(tiny_base, other, dirs_exist_ok=True)
    third = pipeline.prepare(dataclasses.replace(config, base_model=str(other)), progress=False, log=lines.append)
    assert third.trained  # another base: the model is not the one asked for, so it is trained again


def test_a_hub_id_is_read_from_the_hugging_face_cache_without_a_download(tiny_base: Path, tmp_path: Path) -> None:
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tiny-org--tiny-bert"
    shutil.copytree(tiny_base, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = (
        "from sitetune.models import resolve_model_path, base_model_label\n"
        "print(resolve_model_path('tiny-org/tiny-bert'), base_model_label('tiny-org/tiny-bert'))\n"
        "resolve_model_path('tiny-org/not-cached')\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.split() == [str(repo / "snapshots" / commit), "tiny-org/tiny-bert"], out.stderr[-2000:]
    assert ("model 'tiny-org/not-cached' is neither a folder nor a model in the Hugging Face cache: download it "
            "once with HF_HUB_OFFLINE=0") in out.stderr
