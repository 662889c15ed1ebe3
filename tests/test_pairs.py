"""The pairs stage: the card recipe's published counts, the retrieval anchors, the folder contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.config import RETRIEVAL_PAIRS, Recipe
from sitetune.corpus import Corpus
from sitetune.errors import InputError
from sitetune.pairs import build_card_pairs, build_retrieval_pairs, load_pairs, read_info, save_pairs
from sitetune.recordio import write_records
from sitetune.records import SectionRecord

runner = CliRunner()


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory: pytest.TempPathFactory, cbs_csv: Path) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("pairs") / "card"
    result = runner.invoke(app, ["pairs", str(cbs_csv), "--recipe", "card", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout[result.stdout.index("{") :])


def test_card_pairs_published_counts(card_dir: tuple[Path, dict[str, object]]) -> None:
    _, info = card_dir
    assert info["pairs"] == 13_697
    assert info["positives"] == 13_360
    assert info["negatives"] == 337
    assert info["label_mean"] == pytest.approx(0.975, abs=5e-4)
    assert info["train_rows"] == 1_314


def test_card_folder_contract(card_dir: tuple[Path, dict[str, object]]) -> None:
    out, _ = card_dir
    pairs = load_pairs(out, recipe=Recipe.CARD)
    assert pairs.dataset.column_names == ["sentence_0", "sentence_1", "label"]
    assert len(pairs.dataset) == 13_697
    assert sum(pairs.dataset["label"]) == 13_360
    assert set(pairs.dataset["label"]) == {0.0, 1.0}
    # The published text form: no space before "text:".
    first = pairs.dataset[0]["sentence_0"]
    assert first.startswith("page_name: ") and "text: " in first
    assert not first.split("text: ")[0].endswith(" ")
    assert len(pairs.heldout) == 1_643 - 1_314
    info = read_info(out)
    assert info["recipe"] == "card" and info["split"] == "rows" and info["pairs"] == 13_697


def test_card_pairs_are_deterministic(cbs_corpus: Corpus) -> None:
    a = build_card_pairs(cbs_corpus.records)
    b = build_card_pairs(cbs_corpus.records)
    assert a.dataset[:] == b.dataset[:]


def test_card_negatives_cross_pages(cbs_corpus: Corpus) -> None:
    pairs = build_card_pairs(cbs_corpus.records)
    for row in pairs.dataset.select(range(13_360, 13_697)):
        assert row["label"] == 0.0
        page_a = row["sentence_0"].split("text: ")[0]
        page_b = row["sentence_1"].split("text: ")[0]
        assert page_a != page_b


def test_retrieval_pairs_anchor_kinds_and_uniqueness(cbs_corpus: Corpus) -> None:
    pairs = build_retrieval_pairs(cbs_corpus.records)
    data = pairs.dataset
    assert data.column_names[:2] == ["anchor", "positive"]
    assert {"page", "chunk_id", "kind"} <= set(data.column_names)
    assert len(set(data["anchor"])) == len(data)
    assert set(data["kind"]) == {"title", "question", "cloze"}
    # Every page is trained on; a few near-identical chunks lose their only anchors to a twin (deduplicated).
    trained = set(data["chunk_id"])  # read once: each column read converts the whole Arrow column
    assert len(trained) >= 0.98 * len(cbs_corpus.chunks)
    assert {r.page_name for r in cbs_corpus.records} == set(data["page"]) | {
        p for c in cbs_corpus.chunks if c.chunk_id in trained for p in c.pages
    }
    assert pairs.info["split"] == "pages" and pairs.heldout == []
    # Positives carry page and section title (the template recorded in the model's sitetune.json).
    row = data[0]
    assert row["positive"].startswith(f"{row['page']} | ")


def test_retrieval_page_split_keeps_heldout_text_out(cbs_corpus: Corpus) -> None:
    from dataclasses import replace

    pairs = build_retrieval_pairs(cbs_corpus.records, replace(RETRIEVAL_PAIRS, holdout_pages=0.2))
    held_pages = set(pairs.info["heldout_pages"])  # type: ignore[arg-type]
    assert held_pages and {r.page_name for r in pairs.heldout} == held_pages
    held_ids = {r.chunk_id for r in pairs.heldout}
    assert not held_ids & set(pairs.dataset["chunk_id"])
    held_texts = {r.text for r in pairs.heldout}
    assert not any(t in p for p in pairs.dataset["positive"][:200] for t in held_texts)


def _write(path: Path, records: list[SectionRecord]) -> Path:
    write_records(records, path)
    return path


def test_bad_corpora_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("url,page_name,section_title,section_type,text_chunk\n", encoding="utf-8")
    one_page = _write(
        tmp_path / "one.csv",
        [SectionRecord("A", f"S{i}", f"S{i}", f"Text {i}.", "https://a") for i in range(10)],
    )
    for corpus in (empty, one_page):
        for recipe in ("card", "retrieval"):
            out = tmp_path / f"out-{corpus.stem}-{recipe}"
            result = runner.invoke(app, ["pairs", str(corpus), "--recipe", recipe, "--out", str(out)])
            assert result.exit_code == 2, result.output
            assert "error:" in result.output
            # Each message names what is wrong: the empty file by its path, the other by its page count.
            if corpus == empty:
                assert f"error: {empty}: the corpus has no records" in result.output, result.output
            else:
                assert f"error: the {recipe} recipe needs at least two pages" in result.output, result.output
                assert "the corpus has 1" in result.output
            assert not out.exists()
    result = runner.invoke(app, ["pairs", str(one_page), "--out", str(tmp_path / "x")])
    assert "at least two pages" in result.output


def test_other_recipes_folder_is_refused(card_dir: tuple[Path, dict[str, object]]) -> None:
    out, _ = card_dir
    with pytest.raises(InputError, match="card-recipe pairs"):
        load_pairs(out, recipe=Recipe.RETRIEVAL)
    with pytest.raises(InputError, match="not a pairs folder"):
        load_pairs(out / "train", recipe=Recipe.CARD)


def test_existing_folder_is_not_overwritten(tmp_path: Path, cbs_corpus: Corpus) -> None:
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    records = [r for r in cbs_corpus.records if r.page_name in cbs_corpus.pages[:6]]
    corpus_file = _write(tmp_path / "small.jsonl", records)
    result = runner.invoke(app, ["pairs", str(corpus_file), "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = runner.invoke(app, ["pairs", str(corpus_file), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and load_pairs(out).recipe is Recipe.RETRIEVAL


def test_save_and_load_roundtrip(tmp_path: Path, cbs_corpus: Corpus) -> None:
    records = [r for r in cbs_corpus.records if r.page_name in cbs_corpus.pages[:8]]
    pairs = build_retrieval_pairs(records)
    save_pairs(pairs, tmp_path / "p")
    loaded = load_pairs(tmp_path / "p", recipe=Recipe.RETRIEVAL)
    assert loaded.dataset[:] == pairs.dataset[:]
    assert loaded.info == pairs.info


def test_hard_negatives_are_mined_with_the_base_model(cbs_corpus: Corpus) -> None:
    from dataclasses import replace

    records = [r for r in cbs_corpus.records if r.page_name in set(cbs_corpus.pages[30:34])]
    pairs = build_retrieval_pairs(records, replace(RETRIEVAL_PAIRS, hard_negatives=True))
    data = pairs.dataset
    assert data.column_names[:3] == ["anchor", "positive", "negative"]
    assert len(data) > 0 and pairs.info["hard_negatives"] is True
    assert all(row["negative"] != row["positive"] for row in data)
