"""One question, read once: search, the two-step look-up and the answer take the same :class:`Query`.

A counting wrapper around the real encoder shows how often the question itself is encoded on the way
through ranking and answering (sentences of sections are other texts and are not counted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sitetune.answer import Answerer
from sitetune.corpus import Corpus
from sitetune.errors import InputError
from sitetune.index import build_index
from sitetune.search import Query, Searcher
from test_sectionkind import PROGRAMMES, site_records


class CountingEncoder:
    """The real encoder, counting each text it is asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dim, self.info, self.model_path = inner.dim, inner.info, inner.model_path
        self.texts: Counter[str] = Counter()

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        self.texts.update(texts)
        return self.inner.encode(texts, show_progress=show_progress)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("query") / "store"
    build_index(Corpus.from_records(site_records()), "base", path, progress=False)
    return path


@pytest.fixture()
def counted(store: Path, base_encoder: Any) -> Iterator[tuple[Searcher, CountingEncoder]]:
    encoder = CountingEncoder(base_encoder)
    with Searcher.open(store, encoder=base_encoder) as searcher:
        searcher.encoder = encoder  # type: ignore[assignment]
        yield searcher, encoder


def test_reading_a_question_corrects_encodes_and_finds_its_pages_once(
    counted: tuple[Searcher, CountingEncoder],
) -> None:
    searcher, encoder = counted
    query = searcher.read(f"tution fees for {PROGRAMMES[0]}")
    assert query.read_as == f"tuition fees for {PROGRAMMES[0]}"
    assert PROGRAMMES[0] in query.pages and query.page is None
    assert encoder.texts == Counter({encoder.info.query(query.read_as): 1})
    np.testing.assert_allclose(query.vector, searcher.encode_query(query.text))
    with pytest.raises(InputError, match="empty"):
        searcher.read("   ")


def test_searching_a_read_question_encodes_nothing_more(counted: tuple[Searcher, CountingEncoder]) -> None:
    searcher, encoder = counted
    query = searcher.read("when is the application deadline")
    hits = searcher.search(query, k=3)
    assert hits and hits == searcher.search(query, k=3)
    assert encoder.texts[encoder.info.query(query.read_as)] == 1


@pytest.mark.parametrize("question", ["when is the application deadline", "what English level do I need"])
def test_an_answer_encodes_the_question_once(counted: tuple[Searcher, CountingEncoder], question: str) -> None:
    searcher, encoder = counted
    answerer = Answerer(searcher)
    answer = answerer.answer(question)
    assert answer.text
    asked = encoder.info.query(searcher.normalise_query(question))
    assert encoder.texts[asked] == 1, encoder.texts


def test_a_page_filter_travels_with_the_query(counted: tuple[Searcher, CountingEncoder]) -> None:
    searcher, _ = counted
    query = searcher.read("tuition fees", page=PROGRAMMES[1].upper())
    assert isinstance(query, Query) and query.page == PROGRAMMES[1]
    assert {h.page_name for h in searcher.search(query, k=3)} == {PROGRAMMES[1]}
