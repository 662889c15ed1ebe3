from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sitetune.corpus import Corpus, corpus_stats
from sitetune.records import SectionRecord


def test_cbs_figures(cbs_corpus: Corpus) -> None:
    assert len(cbs_corpus.records) == 1643
    assert len(cbs_corpus.pages) == 117
    assert len(cbs_corpus.urls) == 136
    assert len(cbs_corpus.chunks) == 961


def test_dedup_keeps_every_occurrence() -> None:
    shared = "Come to our open day."
    corpus = Corpus.from_records(
        [
            SectionRecord("A", "Open day", "Open day", shared, "https://a"),
            SectionRecord("B", "Open day", "Open day", shared, "https://b"),
            SectionRecord("B", "Open day", "Open day", shared, "https://b"),  # exact repeat: one place
            SectionRecord("B", "Fees", "Fees", "Fees are zero.", "https://b"),
        ]
    )
    assert len(corpus) == 2
    open_day = corpus.chunks[0]
    assert open_day.pages == ("A", "B")
    assert [o.url for o in open_day.occurrences] == ["https://a", "https://b"]
    assert corpus.duplicate_groups() == [open_day]


def test_stats_on_cbs(cbs_corpus: Corpus) -> None:
    stats = corpus_stats(cbs_corpus)
    assert stats.largest_duplicate_groups[0]["occurrences"] == 47
    assert stats.over_512_tokens == 0
    assert 0 < stats.over_256_tokens < stats.unique_texts
    assert stats.token_length["min"] <= stats.token_length["p50"] <= stats.token_length["max"]


def test_cli_stats_json(cbs_csv: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sitetune.cli.main", "corpus", "stats", str(cbs_csv), "--json"],
        capture_output=True, text=True, check=True,
    )
    data = json.loads(out.stdout)
    assert (data["rows"], data["pages"], data["urls"], data["unique_texts"]) == (1643, 117, 136, 961)


def test_cli_bad_corpus_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("url,page_name\nx,y\n")
    out = subprocess.run(
        [sys.executable, "-m", "sitetune.cli.main", "corpus", "stats", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert str(bad) in out.stderr and "missing column" in out.stderr
