"""Fine-tuning: the card recipe (the published model, reproduced) and the retrieval recipe (default).

:func:`train` is the one entry point the CLI and benchmarks use::

    from sitetune.train import train
    result = train(RETRIEVAL_RECIPE, out="runs/model", corpus="pages.csv")

See ``docs/train.md`` for the recipes, the planned step count, resume, the optional time cap and torchrun.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sitetune.config import Recipe, RerankTrainConfig, TrainConfig
from sitetune.errors import SitetuneError
from sitetune.pairs.storage import Pairs
from sitetune.train.core import TrainingInterrupted, TrainResult, check_output
from sitetune.train.steps import StepPlan, plan_steps

__all__ = ["StepPlan", "TrainResult", "TrainingInterrupted", "plan_steps", "train"]


def train(
    config: TrainConfig,
    *,
    out: str | Path,
    pairs: Pairs | None = None,
    pairs_dir: str | Path | None = None,
    corpus: str | Path | None = None,
    pairs_config: object | None = None,
    base: str | Path = "base",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], object] | None = None,
    reranker: RerankTrainConfig | None = None,
) -> TrainResult:
    """Train ``config.recipe`` and write the model folder ``out``.

    Exactly one source of pairs: ``pairs`` (built in memory), ``pairs_dir`` (a folder from
    ``sitetune pairs``) or ``corpus`` (the recipe's pairs are built from it first).

    Args:
        config: The recipe preset, adjusted (steps, precision, an optional time cap...).
        out: The model folder to create; an existing one is refused unless ``overwrite``.
        pairs: Prebuilt pairs.
        pairs_dir: A pairs folder; one built for another recipe is refused.
        corpus: A corpus file (CSV, JSONL or Parquet).
        pairs_config: A :class:`~sitetune.config.PairsConfig` for ``corpus`` (default: the recipe's preset).
        base: The model to start from (``"base"``: the packaged all-MiniLM-L6-v2).
        overwrite: Replace an existing ``out``.
        resume: Continue an interrupted run from its newest complete checkpoint.
        progress: Show a progress bar.
        log: Called with the planned step count before training, and with a warning if ``max_minutes``
            cut the run short.
        reranker: Also train the site's cross-encoder into ``out/reranker`` after the bi-encoder
            (retrieval recipe only; :mod:`sitetune.rerank.train`); ``None``: no reranker.

    Returns:
        The run's figures.
    """
    from dataclasses import replace

    from sitetune.config import PairsConfig
    from sitetune.corpus import Corpus
    from sitetune.pairs import build_pairs, default_pairs_config, load_pairs
    from sitetune.train.card import card_plan
    from sitetune.train.checkpoints import has_progress, work_dir_for
    from sitetune.train.core import run
    from sitetune.train.retrieval import retrieval_plan

    out = Path(out)
    check_output(out, overwrite=overwrite)
    # Refuse before any work (pairs, model loading) rather than after it.
    if not resume and not overwrite and has_progress(work_dir_for(out)):
        raise SitetuneError(
            f"{work_dir_for(out)} holds an unfinished run: "
            "pass --resume to continue it or --overwrite to start over"
        )
    sources = [s for s in (pairs, pairs_dir, corpus) if s is not None]
    if len(sources) != 1:
        raise SitetuneError("give exactly one of --pairs DIR or --corpus FILE")
    if pairs is None and pairs_dir is not None:
        pairs = load_pairs(pairs_dir, recipe=config.recipe)
    elif pairs is None and corpus is not None:
        pc = pairs_config if isinstance(pairs_config, PairsConfig) else default_pairs_config(config.recipe)
        pc = replace(pc, recipe=config.recipe)
        pairs = build_pairs(Corpus.load(corpus).records, pc)
    assert pairs is not None
    if pairs.recipe is not config.recipe:
        raise SitetuneError(
            f"these are {pairs.recipe.value}-recipe pairs; recipe {config.recipe.value} cannot use them"
        )
    plan = (
        card_plan(pairs, config, base=base)
        if config.recipe is Recipe.CARD
        else retrieval_plan(pairs, config, base=base)
    )
    result = run(
        plan,
        config,
        out,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        log=log,
        extra_files={"pairs_info.json": json.dumps(pairs.info, indent=2, ensure_ascii=False) + "\n"},
    )
    if reranker is not None and config.recipe is Recipe.RETRIEVAL:
        from sitetune.rerank.train import train_reranker, write_card_section

        trained = train_reranker(pairs.dataset, out, out, reranker, progress=progress)
        write_card_section(out, trained)
        if log is not None:
            log(f"reranker -> {trained.folder}: {trained.steps} steps on {trained.anchors} anchors, "
                f"{trained.seconds:.0f} s, last loss {trained.losses[-1][1] if trained.losses else float('nan'):.3f}")
    return result
