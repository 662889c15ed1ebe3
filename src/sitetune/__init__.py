"""sitetune: turn a website's pages into a domain-tuned embedding model and a cited search service.

Pipeline, one stage per subpackage::

    crawl -> sectionize -> corpus -> pairs -> train -> evaluation -> index -> search / answer -> serve

The names below are the Python API (docs/python.md shows the whole pipeline). They are imported on first
use, so ``import sitetune`` stays fast and loads no model library; importing changes no process state.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    # records and corpus
    "SectionRecord": "sitetune.records",
    "Corpus": "sitetune.corpus",
    "Chunk": "sitetune.corpus",
    "Occurrence": "sitetune.corpus",
    # stages
    "crawl_corpus": "sitetune.api",
    "load_corpus": "sitetune.api",
    "build_pairs": "sitetune.api",
    "train_model": "sitetune.api",
    "build_index": "sitetune.index",
    "open_store": "sitetune.index",
    "Searcher": "sitetune.search",
    "SearchHit": "sitetune.search",
    "Answerer": "sitetune.answer",
    "Answer": "sitetune.answer",
    "answer_question": "sitetune.api",
    "evaluate": "sitetune.evaluation",
    "run_server": "sitetune.serve",
    # settings
    "CrawlConfig": "sitetune.config",
    "PairsConfig": "sitetune.config",
    "TrainConfig": "sitetune.config",
    "EncoderConfig": "sitetune.config",
    "SearchConfig": "sitetune.config",
    "AnswerConfig": "sitetune.config",
    "ServeConfig": "sitetune.config",
    "Recipe": "sitetune.config",
    "RETRIEVAL_RECIPE": "sitetune.config",
    "CARD_RECIPE": "sitetune.config",
    # errors
    "SitetuneError": "sitetune.errors",
    "InputError": "sitetune.errors",
    "StoreError": "sitetune.index",
}

#: The same names as :data:`_EXPORTS` (a test checks), written out for linters and type checkers.
__all__ = [
    "CARD_RECIPE",
    "RETRIEVAL_RECIPE",
    "Answer",
    "AnswerConfig",
    "Answerer",
    "Chunk",
    "Corpus",
    "CrawlConfig",
    "EncoderConfig",
    "InputError",
    "Occurrence",
    "PairsConfig",
    "Recipe",
    "SearchConfig",
    "SearchHit",
    "Searcher",
    "SectionRecord",
    "ServeConfig",
    "SitetuneError",
    "StoreError",
    "TrainConfig",
    "__version__",
    "answer_question",
    "build_index",
    "build_pairs",
    "crawl_corpus",
    "evaluate",
    "load_corpus",
    "open_store",
    "run_server",
    "train_model",
]

if TYPE_CHECKING:
    from sitetune.answer import Answer, Answerer
    from sitetune.api import answer_question, build_pairs, crawl_corpus, load_corpus, train_model
    from sitetune.config import (
        CARD_RECIPE,
        RETRIEVAL_RECIPE,
        AnswerConfig,
        CrawlConfig,
        EncoderConfig,
        PairsConfig,
        Recipe,
        SearchConfig,
        ServeConfig,
        TrainConfig,
    )
    from sitetune.corpus import Chunk, Corpus, Occurrence
    from sitetune.errors import InputError, SitetuneError
    from sitetune.evaluation import evaluate
    from sitetune.index import StoreError, build_index, open_store
    from sitetune.records import SectionRecord
    from sitetune.search import Searcher, SearchHit
    from sitetune.serve import run_server


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sitetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
