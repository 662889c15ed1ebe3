"""The index: embedded generations and Milvus Lite, built from CBS slices with the real base model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sitetune.corpus import Corpus
from sitetune.index import EmbeddedStore, StoreError, build_index, open_store
from sitetune.recordio import write_records

# Two overlapping slices of CBS: B drops A's first page and adds another, so a re-index has kept,
# removed and new chunks (and boilerplate shared between pages).
PAGES_A = ("Deadlines", "MSc in Business Administration and Philosophy", "Exemptions")
PAGES_B = ("MSc in Business Administration and Philosophy", "Exemptions", "Double Degree with Bocconi")


def _slice(corpus: Corpus, pages: tuple[str, ...], path: Path) -> Path:
    write_records([r for r in corpus.records if r.page_name in pages], path)
    return path


@pytest.fixture(scope="module")
def slices(cbs_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("slices")
    return _slice(cbs_corpus, PAGES_A, d / "a.jsonl"), _slice(cbs_corpus, PAGES_B, d / "b.jsonl")


@pytest.fixture(scope="module")
def built(slices: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store indexed from A, then re-indexed from B (two generations)."""
    store = tmp_path_factory.mktemp("stores") / "store"
    build_index(slices[0], "base", store, progress=False)
    build_index(slices[1], "base", store, progress=False)
    return store


def _ids(path: Path) -> set[str]:
    return {c.chunk_id for c in Corpus.load(path).chunks}


def test_default_store_incremental_reindex_embeds_only_changed_chunks(
    slices: tuple[Path, Path], tmp_path: Path, base_encoder: object
) -> None:
    a, b = slices
    store = tmp_path / "store"
    first = build_index(a, "base", store, progress=False)
    assert (first.generation, first.embedded, first.reused, first.removed) == (1, len(_ids(a)), 0, 0)
    with open_store(store) as reader:
        old = {c.chunk_id: reader.generation.vectors[i].copy() for i, c in enumerate(reader.chunks)}  # type: ignore[index]
        chunks = list(reader.chunks)
    assert set(old) == _ids(a) and len(chunks) == len(old)
    # The stored vectors are the model's vectors of the formatted documents.
    expected = base_encoder.encode([base_encoder.info.document(c) for c in chunks[:8]])  # type: ignore[attr-defined]
    assert np.allclose(np.stack([old[c.chunk_id] for c in chunks[:8]]), expected, atol=2e-2)

    second = build_index(b, "base", store, progress=False)
    kept, new, gone = _ids(a) & _ids(b), _ids(b) - _ids(a), _ids(a) - _ids(b)
    assert kept and new and gone
    assert (second.generation, second.reused, second.embedded, second.removed) == (
        2,
        len(kept),
        len(new),
        len(gone),
    )
    with open_store(store) as reader:
        ids = [c.chunk_id for c in reader.chunks]
        assert len(ids) == len(set(ids)) and set(ids) == _ids(b)
        vectors = reader.generation.vectors
        assert vectors is not None and vectors.shape == (len(ids), 384)
        for i, cid in enumerate(ids):
            if cid in kept:
                assert np.array_equal(vectors[i], old[cid])  # reused bytes, not re-embedded
    # The previous generation is kept until the next one is complete, older ones are pruned.
    assert EmbeddedStore(store).generations() == [1, 2]
    third = build_index(b, "base", store, progress=False)
    assert third.embedded == 0 and EmbeddedStore(store).generations() == [2, 3]
    manifest = json.loads((store / "gen-000003" / "manifest.json").read_text())
    assert (
        manifest["count"] == len(ids) and manifest["dim"] == 384 and len(manifest["model_fingerprint"]) == 64
    )
    assert set(manifest["files"]) >= {"vectors.npy", "chunks.jsonl"}


def _children() -> list[str]:
    """Command lines of this process's live children (Milvus Lite's server must be gone after close)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if (
                int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()
                and stat.rsplit(")", 1)[1].split()[0] != "Z"
            ):
                out.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_milvus_lite_store_matches_embedded_and_updates_incrementally(
    slices: tuple[Path, Path], built: Path, tmp_path: Path, base_encoder: object
) -> None:
    from sitetune.search import Searcher

    a, b = slices
    uri = f"milvus://{tmp_path / 'chunks.db'}"
    first = build_index(a, "base", uri, progress=False)
    assert first.embedded == len(_ids(a))
    second = build_index(b, "base", uri, progress=False)
    assert (second.embedded, second.removed) == (len(_ids(b) - _ids(a)), len(_ids(a) - _ids(b)))
    with open_store(uri) as reader:
        assert reader.milvus is not None
        assert set(reader.milvus.present()) == _ids(b)  # removed rows deleted from the collection
        assert {c.chunk_id for c in reader.chunks} == _ids(b)
    queries = ["When is the application deadline?", "philosophy and business", "double degree in Milan"]
    with (
        Searcher.open(uri, encoder=base_encoder) as lite,
        Searcher.open(built, encoder=base_encoder) as local,
    ):  # type: ignore[arg-type]
        for q in queries:
            assert [h.chunk_id for h in lite.search(q, k=5)] == [h.chunk_id for h in local.search(q, k=5)]
    # (The Milvus standalone server of tests/milvus_server.py, if this session started one, is not Lite's.)
    assert not [c for c in _children() if "milvus" in c.lower() and "run standalone" not in c]


def test_query_with_another_model_is_refused(built: Path, tmp_path: Path) -> None:
    from sitetune.models import base_model_path
    from sitetune.search import Searcher

    # Same weights, different document template: a different model as far as the store is concerned.
    other = tmp_path / "other-model"
    other.mkdir()
    for item in base_model_path().iterdir():
        (other / item.name).symlink_to(item)
    (other / "sitetune.json").write_text(json.dumps({"document_template": "{section_title}: {text}"}))
    with pytest.raises(StoreError, match="different model"):
        Searcher.open(built, model=str(other))
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    result = CliRunner().invoke(app, ["search", "deadline", "--store", str(built), "--model", str(other)])
    assert result.exit_code == 2 and "different model" in result.output


def test_corrupt_generation_falls_back_then_errors(built: Path, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "copy"
    shutil.copytree(built, store)
    vectors = store / "gen-000002" / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-5] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="checksum mismatch"), open_store(store) as reader:
        assert reader.manifest.generation == 1  # the previous, intact generation
    (store / "gen-000001" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="no intact generation"):
        open_store(store)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match="no index"):
        open_store(empty)


def test_write_failure_leaves_previous_generation_intact(slices: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    a, b = slices
    store = tmp_path / "store"
    build_index(a, "base", store, progress=False)
    before = {p.name: p.read_bytes() for p in (store / "gen-000001").iterdir() if p.is_file()}
    # A real I/O error: a file-size limit makes the new generation's first large write fail (EFBIG).
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384));"
        "from sitetune.cli.main import app; sys.argv=['sitetune']+sys.argv[1:]; app()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "index", "--corpus", str(b), "--store", str(store), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr
    assert "could not write a new generation" in result.stderr and "generation 1 is intact" in result.stderr
    assert EmbeddedStore(store).generations() == [1]
    assert not [p for p in store.iterdir() if p.name.startswith(".gen-")]  # no half generation left
    assert {p.name: p.read_bytes() for p in (store / "gen-000001").iterdir() if p.is_file()} == before
    with open_store(store) as reader:
        assert {c.chunk_id for c in reader.chunks} == _ids(a)
    shutil.rmtree(store)


def test_bad_inputs_are_clear_errors(slices: tuple[Path, Path], tmp_path: Path) -> None:
    from sitetune.errors import InputError

    with pytest.raises(InputError, match=r"missing\.csv: no such file"):
        build_index(tmp_path / "missing.csv", "base", tmp_path / "s", progress=False)
    with pytest.raises(StoreError, match=r"\.db"):
        build_index(slices[0], "base", "milvus://" + str(tmp_path / "nodb"), progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        build_index(slices[0], "base", tmp_path / "file", progress=False)
