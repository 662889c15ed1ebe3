"""The ``sitetune`` application: one sub-module per pipeline stage registers its commands here."""

from __future__ import annotations

import typer

from sitetune.cli import (
    answer_cmd,
    corpus_cmd,
    crawl_cmd,
    evaluate_cmd,
    export_cmd,
    report_cmd,
    run_cmd,
    service_cmd,
    train_cmd,
)

app = typer.Typer(
    name="sitetune",
    help="Turn a website's pages into a domain-tuned embedding model and a cited search service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (crawl_cmd, corpus_cmd, train_cmd, evaluate_cmd, service_cmd, answer_cmd, export_cmd, run_cmd,
               report_cmd):
    module.register(app)

if __name__ == "__main__":
    app()
