"""``sitetune run``: the main job (crawl or read a corpus, train, index, serve) in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli import common
from sitetune.cli.common import handle_errors, print_json
from sitetune.cli.run_process import INTERRUPTED_EXIT, PreparationInterrupted, prepare_in_child
from sitetune.config import RerankTrainConfig, SearchConfig, ServeConfig
from sitetune.pipeline import MainJobConfig

_SERVE = ServeConfig()  # flag defaults come from the configs
_SEARCH = SearchConfig()
_JOB = MainJobConfig()

#: Where a site configuration file keeps each flag's value (docs/config.md).
_FILE_KEYS: dict[str, common.FileKey] = {
    "corpus": ("site", "corpus"),
    "site": ("site", "start"),
    "workdir": ("site", "workdir"),
    "train_steps": ("train", "max_steps"),
    "train_minutes": ("train", "max_minutes"),
    "retrain": ("train", "retrain"),
    "reranker": ("train", "reranker"),
    "reranker_steps": ("train", "reranker_steps"),
    "rerank_weight": ("search", "rerank_weight"),
    "host": ("serve", "host"),
    "port": ("serve", "port"),
}


def _echo(line: str) -> None:
    """A step line of the main job, on stdout (module-level: the child process calls it)."""
    typer.echo(line)


def _warnings_only(line: str) -> None:
    """Under --json stdout belongs to the JSON: only a warning (a cut-short training) is said, on stderr."""
    if "warning:" in line:
        typer.echo(line.strip(), err=True)


@handle_errors
@common.config_file_flags(_FILE_KEYS, exclusive=(("corpus", "site"),))
def run(
    ctx: typer.Context,
    config_file: common.ConfigOption = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Corpus file to use instead of crawling "
                                                "the bundled sample site.")] = None,
    site: Annotated[str, typer.Option("--site", help="What to crawl without --corpus: an http(s) URL, a site "
                                      "folder, or 'sample' (the bundled sample site).")] = _JOB.start,
    workdir: Annotated[Path, typer.Option("--workdir", help="Where corpus, model and store go.")] = _JOB.workdir,
    train_steps: Annotated[int | None, typer.Option("--train-steps", min=1, help="Train exactly this many steps "
                                                    "(default: planned from the corpus).")] = None,
    train_minutes: Annotated[float | None, typer.Option("--train-minutes", min=0.01, help="Optional time cap on "
                                                        "training (off by default; warns if it cuts training "
                                                        "short).")] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train even if the corpus did not change.")] = False,
    reranker: Annotated[bool, typer.Option("--reranker/--no-reranker", help="Also train the site's cross-encoder "
                                           "reranker (off by default: it did not beat the fused order on "
                                           "either real site measured; see docs/rerank.md).")] = False,
    reranker_steps: Annotated[int, typer.Option("--reranker-steps", min=1, help="Reranker optimizer steps.")] = (
        RerankTrainConfig.steps
    ),
    rerank_weight: common.RerankWeightOption = _SEARCH.rerank_weight,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = _SERVE.host,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = _SERVE.port,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after indexing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job's figures as JSON (implies "
                                          "--no-serve).")] = False,
) -> None:
    """Crawl the bundled sample site (or --site, or read --corpus), train a model, index it and serve it.

    Training runs a step count planned from the corpus, so the same corpus gives the same model anywhere.
    With --config site.toml everything else (crawl prefix and limits, base model, reranker, LLM, serve
    settings) comes from the file too; flags given override it.

    Example: sitetune run --corpus pages.csv --workdir runs/site
    Example: sitetune run --config site.toml --port 8080
    """
    from dataclasses import replace

    from sitetune import pipeline

    file = common.site_config(config_file)
    job = file.job if file is not None else pipeline.MainJobConfig()
    config = replace(
        job,
        workdir=workdir, corpus=corpus, start=site, retrain=retrain,
        train=replace(job.train, max_minutes=train_minutes, max_steps=train_steps),
        serve=replace(job.serve, host=host, port=port),
        reranker=RerankTrainConfig(steps=reranker_steps) if reranker else None,
        search=replace(job.search, rerank_weight=rerank_weight),
    )

    pipeline.check_config(config)  # refused here, before a process starts
    try:
        # Crawl, train and index in a child process: this one then serves without training's memory.
        result = prepare_in_child(config, progress=not as_json, log=_warnings_only if as_json else _echo)
    except PreparationInterrupted:
        typer.echo("interrupted: stopped before serving", err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    if as_json:
        print_json(result.__dict__)
        return
    if no_serve:
        typer.echo(f"done: sitetune serve --store {result.store}")
        return
    typer.echo("[4/4] serving (Ctrl-C stops)")
    pipeline.serve(result, config, log=typer.echo)


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run")(run)
