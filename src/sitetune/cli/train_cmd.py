"""``sitetune pairs`` and ``sitetune train``: build training pairs, fine-tune a model.

Thin: flags become a :class:`~sitetune.config.PairsConfig` / :class:`~sitetune.config.TrainConfig`
(``dataclasses.replace`` on the recipe's preset); the work is in :mod:`sitetune.pairs` and
:mod:`sitetune.train`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json
from sitetune.config import CARD_RECIPE, RETRIEVAL_RECIPE, Precision, Recipe, RerankTrainConfig, TrainConfig


def _preset(recipe: Recipe) -> TrainConfig:
    return CARD_RECIPE if recipe is Recipe.CARD else RETRIEVAL_RECIPE


@handle_errors
def pairs_command(
    corpus: Annotated[Path, typer.Argument(help="Corpus file: .csv, .jsonl or .parquet")],
    out: Annotated[Path, typer.Option("--out", help="Pairs folder to create")],
    recipe: Annotated[Recipe, typer.Option("--recipe", help="Whose pairs to build")] = Recipe.RETRIEVAL,
    holdout_pages: Annotated[
        float,
        typer.Option(
            "--holdout-pages", help="Retrieval: fraction of pages held out for evaluation (0: train on all)"
        ),
    ] = 0.0,
    hard_negatives: Annotated[
        bool,
        typer.Option(
            "--hard-negatives/--no-hard-negatives", help="Retrieval: mine one hard negative per pair"
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random choices")] = 42,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Build a recipe's training pairs from a corpus and save them (dataset, held-out rows, info).

    Example: sitetune pairs ../shared/data/cbs_graduate_programs.csv --recipe card --out runs/card-pairs
    """
    from sitetune.corpus import Corpus
    from sitetune.pairs import build_pairs, check_pairs_folder, default_pairs_config, save_pairs

    check_pairs_folder(out, overwrite=overwrite)  # before the pairs are built, not after
    config = dataclasses.replace(
        default_pairs_config(recipe),
        recipe=recipe,
        holdout_pages=holdout_pages,
        hard_negatives=hard_negatives,
        seed=seed,
    )
    pairs = build_pairs(Corpus.load(corpus).records, config)
    save_pairs(pairs, out, overwrite=overwrite)
    info = {**pairs.info, "out": str(out)}
    if as_json:
        print_json(info)
        return
    typer.echo(f"{info['pairs']:,} {recipe.value} pairs -> {out}")
    for key in (
        "positives",
        "negatives",
        "label_mean",
        "anchors",
        "train_rows",
        "train_chunks",
        "heldout_rows",
    ):
        if key in info:
            typer.echo(f"  {key:<13} {info[key]}")


@handle_errors
def train_command(
    out: Annotated[Path, typer.Option("--out", help="Model folder to create")],
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Build the recipe's pairs from this corpus")
    ] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="A folder from `sitetune pairs`")] = None,
    recipe: Annotated[Recipe, typer.Option("--recipe", help="Training recipe")] = Recipe.RETRIEVAL,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Train exactly this many steps (default: planned from the pairs)")
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            "--max-minutes",
            help="Optional time cap: stop after this much training time even before the planned steps "
            "(warns, and the model records it; off by default; 0: off)",
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Passes over the pairs")] = None,
    step_cap: Annotated[
        int | None, typer.Option("--step-cap", help="Most steps the epochs may plan (retrieval default: 80)")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Examples per step")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate")] = None,
    max_seq_length: Annotated[int | None, typer.Option("--max-seq-length", help="Token limit")] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            "--loss",
            help="Retrieval: sorted_mnrl (default), mnrl or cached_mnrl; card: sorted_cosine_mse (default) "
            "or cosine_mse (same loss, other cost)",
        ),
    ] = None,
    mini_batch_size: Annotated[
        int | None, typer.Option("--mini-batch-size", help="Sorted losses: rows per forward pass (cost, not maths)")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option("--checkpoint-every", help="Save a resumable checkpoint every N steps")
    ] = None,
    logging_steps: Annotated[
        int | None,
        typer.Option("--logging-steps", help="Log the mean loss every N steps (card recipe: 500, as the card)"),
    ] = None,
    budget_clock: Annotated[
        str,
        typer.Option(
            "--budget-clock",
            help="What --max-minutes counts: wall, or cpu (CPU time / threads; fair on a busy CPU)",
        ),
    ] = "wall",
    precision: Annotated[
        Precision, typer.Option("--precision", help="bf16 autocast or fp32")
    ] = Precision.AUTO,
    holdout_pages: Annotated[
        float,
        typer.Option("--holdout-pages", help="With --corpus (retrieval): hold this fraction of pages out"),
    ] = 0.0,
    base: Annotated[
        str, typer.Option("--base", help="Model to start from ('base': all-MiniLM-L6-v2)")
    ] = "base",
    seed: Annotated[int, typer.Option("--seed", help="Training seed")] = 42,
    threads: Annotated[
        int,
        typer.Option("--threads", min=0, help="Torch compute threads (0: one per CPU; 1 on a machine shared with "
                     "other jobs)"),
    ] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last complete checkpoint")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model folder")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar")] = True,
    reranker: Annotated[
        bool,
        typer.Option(
            "--reranker/--no-reranker",
            help="Retrieval: also train a cross-encoder reranker into MODEL/reranker (off by default; "
            "BENCHMARKS.md, 'Second stages', has its measurement)",
        ),
    ] = False,
    reranker_steps: Annotated[
        int, typer.Option("--reranker-steps", min=1, help="Reranker optimizer steps")
    ] = RerankTrainConfig.steps,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Fine-tune the base model with a recipe and write a sentence-transformers model folder.

    Examples:
      sitetune train --corpus pages.csv --out runs/model                      (retrieval, planned steps)
      sitetune train --pairs runs/card-pairs --recipe card --out runs/card    (the published recipe)
      torchrun --nproc_per_node 2 -m sitetune.cli.main train --corpus pages.csv --out runs/model
    """
    from sitetune.environment import prefer_passive_openmp

    prefer_passive_openmp()  # before sitetune.train loads torch
    from sitetune.config import PairsConfig
    from sitetune.errors import SitetuneError
    from sitetune.train import train

    if budget_clock not in ("wall", "cpu"):
        raise SitetuneError(f"--budget-clock must be wall or cpu, not {budget_clock!r}")
    card_losses = ("sorted_cosine_mse", "cosine_mse")
    if recipe is Recipe.CARD and loss is not None and loss not in card_losses:
        raise SitetuneError(f"--loss: the card recipe trains with {' or '.join(card_losses)}, not {loss!r}")
    config = dataclasses.replace(_preset(recipe), precision=precision, seed=seed, budget_clock=budget_clock,
                                 threads=threads)
    changes: dict[str, object] = {}
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if max_minutes is not None:
        changes["max_minutes"] = max_minutes if max_minutes > 0 else None
    for name, value in (
        ("epochs", epochs),
        ("step_cap", step_cap),
        ("loss", loss),
        ("mini_batch_size", mini_batch_size),
        ("batch_size", batch_size),
        ("learning_rate", learning_rate),
        ("max_seq_length", max_seq_length),
        ("checkpoint_every", checkpoint_every),
        ("logging_steps", logging_steps),
    ):
        if value is not None:
            changes[name] = value
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    pairs_config = PairsConfig(recipe=recipe, holdout_pages=holdout_pages)
    result = train(
        config,
        out=out,
        pairs_dir=pairs,
        corpus=corpus,
        pairs_config=pairs_config,
        base=base,
        overwrite=overwrite,
        resume=resume,
        progress=progress and not as_json,
        log=lambda line: typer.echo(line, err=as_json or line.startswith("warning:")),
        reranker=RerankTrainConfig(steps=reranker_steps) if reranker else None,
    )
    if as_json:
        print_json(result)
        return
    typer.echo(
        f"{result.recipe} model -> {result.out}: {result.steps} of {result.planned_steps} planned steps, "
        f"{result.seconds_per_step:.2f} s/step, {result.train_seconds:.0f} s ({result.precision}, stopped by "
        f"{result.stopped_by}), last loss {result.last_logged_loss}"
    )


def register(app: typer.Typer) -> None:
    """Add ``pairs`` and ``train`` to ``app``."""
    app.command("pairs")(pairs_command)
    app.command("train")(train_command)
