"""Kill-and-check, small form: SIGKILL ``sitetune index`` re-indexes and check the store after each kill.

The full form (50+ kills on larger slices) is ``benchmarks/crash_index.py``.
"""

from __future__ import annotations

from pathlib import Path

from sitetune.corpus import Corpus
from sitetune.index.crashcheck import kill_loop
from sitetune.recordio import write_records


def test_killed_index_leaves_old_or_new_store(cbs_corpus: Corpus, tmp_path: Path) -> None:
    pages_a = ("Deadlines", "Exemptions", "Legal claim")
    pages_b = ("Exemptions", "Legal claim", "Ukrainian applicants")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records([r for r in cbs_corpus.records if r.page_name in pages_a], a)
    write_records([r for r in cbs_corpus.records if r.page_name in pages_b], b)
    report = kill_loop(a, b, tmp_path / "store", kills=8, seed=1)
    assert report.failures == []
    assert report.kills == 8
    assert report.old + report.new == report.kills + report.completed
