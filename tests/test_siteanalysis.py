"""The site analysis is written into the store at index time and read, not derived again, when it opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sitetune.search.hybrid as hybrid
from sitetune.corpus import Corpus
from sitetune.index import StoreError, build_index
from sitetune.index.store import SITE_FILE
from sitetune.search import Searcher
from sitetune.siteanalysis import SITE_ANALYSIS_VERSION, SiteAnalysis, analyse_site
from test_sectionkind import PROGRAMMES, site_records


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_records(site_records())


@pytest.fixture(scope="module")
def store(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("site") / "store"
    build_index(corpus, "base", path, progress=False)
    return path


def test_the_analysis_round_trips_through_json(corpus: Corpus) -> None:
    analysis = analyse_site(corpus.chunks)
    assert set(analysis.template_pages) == set(PROGRAMMES)
    assert analysis.word_counts["tuition"] >= 2
    assert SiteAnalysis.from_json(analysis.to_json()) == analysis


def test_the_store_keeps_the_analysis_and_search_reads_it(
    store: Path, corpus: Corpus, base_encoder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    (generation,) = store.glob("gen-*")
    assert SITE_FILE in json.loads((generation / "manifest.json").read_text())["files"]
    assert SiteAnalysis.from_json((generation / SITE_FILE).read_text()) == analyse_site(corpus.chunks)

    def not_again(chunks: object) -> SiteAnalysis:
        raise AssertionError("the site was analysed again when the store opened")

    monkeypatch.setattr(hybrid, "analyse_site", not_again)
    with Searcher.open(store, encoder=base_encoder) as searcher:  # type: ignore[arg-type]
        assert searcher.template_pages == frozenset(PROGRAMMES)
        assert searcher.speller.correct("tution fees") == "tuition fees"


def test_a_damaged_analysis_is_refused_naming_the_file(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "store"
    build_index(corpus, "base", path, progress=False)
    (generation,) = path.glob("gen-*")
    (generation / SITE_FILE).write_text(json.dumps({"version": SITE_ANALYSIS_VERSION + 1}))
    with pytest.raises(StoreError, match=SITE_FILE):
        hybrid.open_store(path)
