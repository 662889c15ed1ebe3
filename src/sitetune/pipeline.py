"""The main job: crawl (or read) a corpus, tune a model on it, index it, and serve it.

``sitetune run`` (and so ``make run``) calls :func:`prepare` in a child process
(:mod:`sitetune.cli.run_process`), then :func:`serve` in its own, which never loaded the trainer. Each step
skips work whose inputs did not change: the crawl revalidates pages through its cache, the model is
retrained only when the corpus changed, and the index re-embeds only changed chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sitetune.answer.llm import LLMConfig
from sitetune.atomic import atomic_write_text, sha256_file
from sitetune.config import (
    RETRIEVAL_RECIPE,
    AnswerConfig,
    CrawlConfig,
    EncoderConfig,
    RerankTrainConfig,
    SearchConfig,
    ServeConfig,
    TrainConfig,
)
from sitetune.errors import InputError

#: Training preset for the main job: the retrieval recipe as is. Its step count is planned from the corpus
#: (epochs, capped), not from a time box, so the same corpus gives the same model on any machine; the
#: bundled sample site trains in about a minute, a site the size of the reference corpus in about ten on 2 cores.
MAIN_JOB_RECIPE = replace(RETRIEVAL_RECIPE, max_minutes=None)

_STAMP = "corpus.sha256"


@dataclass(frozen=True)
class MainJobConfig:
    """What the main job works on and where it writes.

    Attributes:
        workdir: Folder for the corpus, model, store and reports (created; default ``runs/default``).
        corpus: A corpus file to use instead of crawling.
        start: What to crawl when ``corpus`` is not given: an http(s) URL, a site folder, or ``"sample"``
            (the bundled sample site, the default).
        prefix: Only URLs under this prefix are crawled (default: the start URL's folder; URLs only).
        public_base: Base URL the records carry instead of the crawled origin.
        crawl: Crawl limits and politeness (default: :func:`sitetune.crawl.default_crawl_config` of ``start``).
        base_model: The model training starts from: ``"base"`` (the packaged all-MiniLM-L6-v2), a
            sentence-transformers model folder, or a Hub id in the Hugging Face cache. A model trained from
            another base is retrained.
        train: Training preset (the retrieval recipe; ``max_minutes`` adds an optional time cap).
        encoder: Encoder settings for indexing and serving.
        serve: Where :func:`serve` listens.
        retrain: Train even if the model was built from this exact corpus already.
        reranker: Also train the site's cross-encoder reranker into ``model/reranker`` (a reused model
            without one gets one); ``None``, the default, trains none (docs/rerank.md: on both real sites
            measured it did not beat the fused order, so it is opt-in).
        search: Search settings of the served store (``rerank_weight`` > 0 uses the reranker).
        answer: Extractive answer settings of the served store.
        llm: Generative answers through an OpenAI-compatible endpoint; ``None`` answers extractively.
    """

    workdir: Path = Path("runs/default")
    corpus: Path | None = None
    start: str = "sample"
    prefix: str | None = None
    public_base: str | None = None
    crawl: CrawlConfig | None = None
    base_model: str = "base"
    train: TrainConfig = MAIN_JOB_RECIPE
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    retrain: bool = False
    reranker: RerankTrainConfig | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    llm: LLMConfig | None = None


@dataclass
class MainJobResult:
    """Where the main job's artifacts are and what each step did."""

    corpus: Path
    model: Path
    store: Path
    rows: int
    unique_chunks: int
    trained: bool
    train_steps: int | None
    planned_steps: int | None
    train_cut_short: str | None
    embedded: int
    reused: int
    seconds: dict[str, float] = field(default_factory=dict)
    reranker: bool = False


def check_config(config: MainJobConfig) -> None:
    """Refuse a config :func:`prepare` cannot run, before any work.

    Raises:
        InputError: Both ``corpus`` and a ``start`` to crawl were given, or ``corpus`` is not a file.
    """
    from sitetune.crawl import SAMPLE_SITE

    if config.corpus is not None and config.start != SAMPLE_SITE:
        raise InputError("give `corpus` or `start`, not both: a corpus file is used as it is, never crawled")
    if config.corpus is not None and not Path(config.corpus).is_file():
        raise InputError("no such corpus file", path=str(config.corpus))


def prepare(config: MainJobConfig, *, progress: bool = True, log: object = print) -> MainJobResult:
    """Crawl or read the corpus, train the model if the corpus changed, and (re)index.

    Args:
        config: Inputs and workdir.
        progress: Show progress bars.
        log: A ``print``-like callable for one line per step.

    Returns:
        Paths and figures of every step.

    Raises:
        InputError: Both ``corpus`` and a ``start`` to crawl were given.
        SitetuneError: A step failed (bad corpus, crawl found nothing, training or indexing error).
    """
    from sitetune.corpus import Corpus
    from sitetune.crawl import SAMPLE_SITE, crawl_source
    from sitetune.index import build_index
    from sitetune.pairs import build_pairs, default_pairs_config
    from sitetune.rerank import RERANKER_DIR, has_reranker
    from sitetune.rerank.train import train_reranker, write_card_section
    from sitetune.train import train

    check_config(config)
    say = log if callable(log) else print
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    if config.corpus is None:
        corpus_path = workdir / "corpus.jsonl"
        corpus, report = crawl_source(config.start, corpus_path, prefix=config.prefix, config=config.crawl,
                                      public_base=config.public_base, progress=progress)
        what = "the bundled sample site" if config.start == SAMPLE_SITE else config.start
        say(f"[1/4] crawled {what}: {len(report.pages)} pages -> {corpus_path}")
    else:
        corpus_path = Path(config.corpus)
        say(f"[1/4] corpus: {corpus_path}")
        corpus = Corpus.load(corpus_path)
    seconds["corpus"] = time.perf_counter() - started
    say(f"      {len(corpus.records)} rows, {len(corpus.pages)} pages, {len(corpus.chunks)} unique chunks")

    started = time.perf_counter()
    model_dir = workdir / "model"
    stamp = workdir / _STAMP
    corpus_hash = sha256_file(corpus_path)
    if config.base_model != "base":  # a model tuned from another base is not this one: the stamp says which
        from sitetune.models import base_model_label

        corpus_hash += f" {base_model_label(config.base_model)}"
    reuse = (not config.retrain and model_dir.is_dir() and stamp.is_file()
             and stamp.read_text().strip() == corpus_hash)
    steps: int | None = None
    planned: int | None = None
    cut_short: str | None = None
    if reuse:
        say(f"[2/4] model {model_dir} was trained on this corpus: reusing it (--retrain to train again)")
        if config.reranker is not None and not has_reranker(model_dir):
            say(f"      training its reranker -> {model_dir / RERANKER_DIR}")
            pairs = build_pairs(corpus.records, replace(default_pairs_config(config.train.recipe),
                                                        recipe=config.train.recipe))
            trained = train_reranker(pairs.dataset, model_dir, model_dir, config.reranker, progress=progress)
            write_card_section(model_dir, trained)
    else:
        cap = f" (time cap {config.train.max_minutes:g} minutes)" if config.train.max_minutes else ""
        start = "" if config.base_model == "base" else f" from {config.base_model}"
        say(f"[2/4] training the retrieval recipe{start}{cap} -> {model_dir}")
        pairs = build_pairs(corpus.records, replace(default_pairs_config(config.train.recipe),
                                                    recipe=config.train.recipe))
        result = train(
            config.train, out=model_dir, pairs=pairs, overwrite=True, progress=progress,
            log=lambda line: say(f"      {line}"), reranker=config.reranker, base=config.base_model,
        )
        steps = result.steps
        planned = result.planned_steps
        cut_short = result.cut_short
        atomic_write_text(stamp, corpus_hash + "\n")
        # The whole stage (pairs, model load, steps, save); s/step is the steps' own pace.
        minutes, plural = (time.perf_counter() - started) / 60, "" if steps == 1 else "s"
        say(f"      trained {steps} step{plural} in {minutes:.1f} min "
            f"({result.seconds_per_step:.1f} s/step on {result.threads} threads)")
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    store = workdir / "store"
    index = build_index(corpus, model_dir, store, config.encoder, progress=progress)
    seconds["index"] = time.perf_counter() - started
    say(f"[3/4] indexed {index.chunks} chunks into {store} ({index.embedded} embedded, {index.reused} reused)")

    result_obj = MainJobResult(
        corpus=corpus_path, model=model_dir, store=store, rows=len(corpus.records),
        unique_chunks=len(corpus.chunks), trained=not reuse, train_steps=steps, planned_steps=planned,
        train_cut_short=cut_short,
        embedded=index.embedded, reused=index.reused, seconds=seconds, reranker=has_reranker(model_dir),
    )
    atomic_write_text(workdir / "main_job.json", json.dumps(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in result_obj.__dict__.items()}, indent=2) + "\n")
    return result_obj



def serve(result: MainJobResult, config: MainJobConfig, *, log: Callable[[str], object] = print) -> None:
    """Serve the store :func:`prepare` built on ``config.serve``'s address until interrupted.

    Args:
        result: What :func:`prepare` returned.
        config: The same job config (its encoder and serve settings are used).
        log: Receives the line with the URL once the model is loaded.
    """
    from sitetune.serve import run_server

    run_server(result.store, config.serve, encoder=config.encoder, search_config=config.search,
               answer_config=config.answer, llm=config.llm, log=log)
