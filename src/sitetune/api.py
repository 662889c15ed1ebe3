"""The pipeline as a few functions over objects in memory; ``import sitetune`` publishes them.

Every stage takes what the previous one returned (a :class:`~sitetune.corpus.Corpus`, a model folder, a
store) and writes a file only where a file is the product (a model, a store) or where it was asked for
(``out=``). The CLI (:mod:`sitetune.cli`) and this module call the same stage functions::

    import sitetune

    corpus = sitetune.crawl_corpus("sample")
    sitetune.train_model(corpus, "runs/model")
    sitetune.build_index(corpus, "runs/model", "runs/store")
    with sitetune.Searcher.open("runs/store") as searcher:
        hits = searcher.search("What IELTS score do I need?")
        answer = sitetune.Answerer(searcher).answer("What IELTS score do I need?")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.config import (
    MAX_QUESTION_CHARS,
    RETRIEVAL_RECIPE,
    AnswerConfig,
    CrawlConfig,
    EncoderConfig,
    PairsConfig,
    Recipe,
    SearchConfig,
    TrainConfig,
)
from sitetune.errors import InputError

if TYPE_CHECKING:
    from sitetune.answer import Answer, LLMConfig
    from sitetune.corpus import Corpus
    from sitetune.pairs import Pairs
    from sitetune.train import TrainResult


def crawl_corpus(
    source: str | Path,
    out: str | Path | None = None,
    *,
    prefix: str | None = None,
    config: CrawlConfig | None = None,
    progress: bool = True,
) -> Corpus:
    """Crawl a site into a corpus in memory, and into the file ``out`` if given.

    Args:
        source: An http(s) start URL, a folder of pages (served on 127.0.0.1 for the crawl), or
            ``"sample"`` for the bundled sample site.
        out: A corpus file to write as well (``.csv``, ``.jsonl`` or ``.parquet``), with its crawl report
            and page cache beside it; ``None`` writes nothing.
        prefix: Only URLs under this prefix are crawled (URLs only; default: the start URL's folder).
        config: Limits and politeness (default: polite for a URL, no delay for a folder).
        progress: Show a progress bar on stderr.

    Returns:
        The corpus.

    Raises:
        InputError: ``source`` or ``prefix`` is unusable, or ``out`` has an unknown extension.
        SitetuneError: No page yielded any text.
    """
    from sitetune.crawl import crawl_source

    corpus, _report = crawl_source(source, Path(out) if out is not None else None, prefix=prefix, config=config,
                                   progress=progress)
    return corpus


def load_corpus(path: str | Path) -> Corpus:
    """Read a corpus file (CSV, JSONL or Parquet of section records).

    Raises:
        InputError: The file is missing, malformed or empty.
    """
    from sitetune.corpus import Corpus

    return Corpus.load(path)


def build_pairs(corpus: Corpus, recipe: Recipe | str = Recipe.RETRIEVAL, config: PairsConfig | None = None) -> Pairs:
    """Build a recipe's training pairs from a corpus.

    Args:
        corpus: The corpus.
        recipe: ``"retrieval"`` (default) or ``"card"`` (the published model's pairs).
        config: Pairs settings (default: the recipe's preset); its recipe is set to ``recipe``.

    Returns:
        The pairs (save them with :func:`sitetune.pairs.save_pairs` for ``sitetune train --pairs``).
    """
    from sitetune.pairs import build_pairs as build
    from sitetune.pairs import default_pairs_config

    chosen = Recipe(recipe)
    return build(corpus.records, replace(config or default_pairs_config(chosen), recipe=chosen))


def train_model(
    training_data: Corpus | Pairs,
    out: str | Path,
    *,
    config: TrainConfig = RETRIEVAL_RECIPE,
    base: str | Path = "base",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], object] | None = None,
) -> TrainResult:
    """Fine-tune the base model and write the model folder ``out``.

    Args:
        training_data: A corpus (the recipe's pairs are built from it) or pairs from :func:`build_pairs`.
        out: The model folder to create.
        config: The recipe preset, adjusted (``replace(RETRIEVAL_RECIPE, max_steps=8)``...).
        base: The model to start from (``"base"``: the packaged all-MiniLM-L6-v2).
        overwrite: Replace an existing ``out``.
        progress: Show a progress bar.
        log: Receives the planned step count and a warning if a time cap cut the run short.

    Returns:
        The run's figures (steps, losses, timings).

    Raises:
        SitetuneError: ``out`` exists and ``overwrite`` is False, or the pairs belong to another recipe.
    """
    from sitetune.corpus import Corpus
    from sitetune.train import train

    pairs = build_pairs(training_data, config.recipe) if isinstance(training_data, Corpus) else training_data
    return train(config, out=out, pairs=pairs, base=base, overwrite=overwrite, progress=progress, log=log)


def check_question(question: str) -> None:
    """Refuse a question search and answer cannot take.

    Raises:
        InputError: The question is empty or only whitespace, or longer than
            :data:`~sitetune.config.MAX_QUESTION_CHARS`.
    """
    if not question.strip():
        raise InputError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")


def answer_question(
    store: str | Path,
    question: str,
    *,
    k: int | None = None,
    page: str | None = None,
    model: str | Path | None = None,
    encoder_config: EncoderConfig | None = None,
    search_config: SearchConfig | None = None,
    answer_config: AnswerConfig | None = None,
    llm: LLMConfig | None = None,
) -> Answer:
    """Open ``store``, answer one question with citations, and close it (``sitetune answer``).

    To answer many questions, open a :class:`~sitetune.search.Searcher` once and reuse an
    :class:`~sitetune.answer.Answerer` over it instead.

    Args:
        store: A store built by :func:`~sitetune.index.build_index`.
        question: The question.
        k: Sections returned with the answer (default: ``answer_config.sections``).
        page: Only sections of this page.
        model: Query model (default: the model that built the store).
        encoder_config: Query encoder settings.
        search_config: Search settings.
        answer_config: Answer settings.
        llm: Generative answers through an OpenAI-compatible endpoint; ``None`` answers extractively.

    Raises:
        InputError: The question is empty or too long.
        StoreError: No usable index at ``store``, or ``model`` is not the store's model.
        LLMError: Generative mode failed.
    """
    from sitetune.answer import Answerer
    from sitetune.search import Searcher

    check_question(question)
    with Searcher.open(store, encoder_config or EncoderConfig(), model, search_config) as searcher:
        return Answerer(searcher, answer_config, llm).answer(question, k=k, page=page)
