"""Kill-and-check, small form: SIGKILL ``sitetune index`` re-indexes and check the store after each kill.

Random kill moments, kills at each named step of a generation write (the window between writing
``.gen-*.tmp`` and switching ``CURRENT``), the writer lock, and a missing or garbled ``CURRENT``.
The full form (50+ kills on larger slices) is ``benchmarks/crash_index.py``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.corpus import Chunk, Corpus, Occurrence
from sitetune.index.crashcheck import SWITCHED_STEPS, WRITE_STEPS, kill_at_steps, kill_loop
from sitetune.index.store import EmbeddedStore, Manifest
from sitetune.lexical import BM25Index
from sitetune.recordio import write_records


@pytest.fixture
def corpora(cbs_corpus: Corpus, tmp_path: Path) -> tuple[Path, Path]:
    pages_a = ("Deadlines", "Exemptions", "Legal claim")
    pages_b = ("Exemptions", "Legal claim", "Ukrainian applicants")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records([r for r in cbs_corpus.records if r.page_name in pages_a], a)
    write_records([r for r in cbs_corpus.records if r.page_name in pages_b], b)
    return a, b


def test_killed_index_leaves_old_or_new_store(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    # Four random moments (two over a whole run, two in its last quarter, where the generation is written):
    # each named write step is killed deterministically below, and the benchmark kills 50 times and more.
    report = kill_loop(*corpora, tmp_path / "store", kills=4, seed=1)
    assert report.failures == []
    assert report.kills == 4
    assert report.old + report.new == report.kills + report.completed


def test_kill_at_each_write_step_leaves_old_before_the_switch_and_new_after(
    corpora: tuple[Path, Path], tmp_path: Path
) -> None:
    report = kill_at_steps(*corpora, tmp_path / "store")
    assert report.failures == []
    assert report.kills == len(WRITE_STEPS) == 5
    switched = len(SWITCHED_STEPS)
    assert report.old == len(WRITE_STEPS) - switched  # killed before CURRENT moved: the old corpus
    assert report.new == 1 + switched + 1  # the build, the kills after the switch, the final run
    assert report.fell_back == 0  # CURRENT always named a whole generation


def test_a_second_writer_is_refused_while_the_lock_is_held(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    args = ["index", "--corpus", str(corpora[0]), "--store", str(store.root), "--model", "base", "--no-progress"]
    with store.lock():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"store {store.root} is being written by another process" in result.output
        assert store.generations() == [] and store.current() is None
    with store.lock():  # released by the refused writer: nothing holds it now
        pass


def _chunk(i: int) -> Chunk:
    text = f"Section {i} says something different: fact number {i}."
    return Chunk(f"{i:016x}", text, (Occurrence("Page", f"Section {i}", "other", "https://example.org/p"),))


def _write_generation(store: EmbeddedStore, ids: range) -> int:
    chunks = [_chunk(i) for i in ids]
    vectors = np.eye(len(chunks), 4, dtype=np.float32)
    manifest = Manifest(0, "model", "fingerprint", "{text}", "corpus", f"hash-{ids}", 4, len(chunks), "text")
    bm25 = BM25Index([c.chunk_id for c in chunks], [c.text for c in chunks])
    with store.lock():
        return store.write(manifest, chunks, [f"doc-{c.chunk_id}" for c in chunks], vectors, bm25)


def _load_quietly(store: EmbeddedStore) -> tuple[int, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generation = store.load().manifest.generation
    return generation, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize(
    "current",
    [None, b"", b"gen-000009\n", b"gen-00000\n", b"garbage\n", b"\xff\xfe\x00gen-000001", b"gen-000001gen-000002"],
    ids=["missing", "empty", "no-such-generation", "short-number", "garbage", "not-utf8", "two-names"],
)
def test_missing_or_garbled_current_falls_back_to_the_newest_intact_generation(
    tmp_path: Path, current: bytes | None
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    assert _write_generation(store, range(0, 3)) == 1
    assert _write_generation(store, range(2, 6)) == 2
    (store.root / "CURRENT").write_text("gen-000001\n")
    assert _load_quietly(store) == (1, [])  # a readable CURRENT is obeyed, even when it is not the newest
    pointer = store.root / "CURRENT"
    if current is None:
        pointer.unlink()
    else:
        pointer.write_bytes(current)
    generation, warned = _load_quietly(store)
    assert generation == 2
    assert len(warned) == 1 and "CURRENT: missing or pointing at no generation" in warned[0]
    # The next writer is not confused by the pointer: a new generation, named by a repaired CURRENT.
    number = _write_generation(store, range(5, 8))
    assert number > 2
    assert pointer.read_text() == f"gen-{number:06d}\n"
    assert _load_quietly(store) == (number, [])
