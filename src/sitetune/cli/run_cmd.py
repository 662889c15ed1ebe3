"""``sitetune run``: the main job (crawl or read a corpus, train, index, serve) in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json


@handle_errors
def run(
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Corpus file to use instead of crawling "
                                                "the bundled sample site.")] = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Where corpus, model and store go.")] = Path(
        "runs/default"),
    train_minutes: Annotated[float, typer.Option("--train-minutes", min=0.1,
                                                 help="Training time budget.")] = 3.0,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train even if the corpus did not change.")] = False,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after indexing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job's figures as JSON (implies "
                                          "--no-serve).")] = False,
) -> None:
    """Crawl the bundled sample site (or read --corpus), train a model, index it and serve it.

    Example: sitetune run --corpus ../shared/data/cbs_graduate_programs.csv --train-minutes 10
    """
    from dataclasses import replace

    from sitetune import pipeline

    config = pipeline.MainJobConfig(
        workdir=workdir, corpus=corpus, retrain=retrain,
        train=replace(pipeline.MAIN_JOB_RECIPE, max_minutes=train_minutes),
    )
    log = (lambda *_: None) if as_json else typer.echo
    result = pipeline.prepare(config, progress=not as_json, log=log)
    if as_json:
        print_json(result.__dict__)
        return
    if no_serve:
        typer.echo(f"done: sitetune serve --store {result.store}")
        return
    from sitetune.config import ServeConfig
    from sitetune.serve import run_server

    typer.echo("[4/4] serving (Ctrl-C stops)")
    run_server(result.store, ServeConfig(host=host, port=port), encoder=config.encoder, log=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
