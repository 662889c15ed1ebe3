"""The ``sitetune`` application: one module per command group (``<group>_cmd.py``), each with ``register(app)``."""

from __future__ import annotations

import typer

from sitetune.cli import (
    answer_cmd,
    corpus_cmd,
    crawl_cmd,
    evaluate_cmd,
    export_cmd,
    index_cmd,
    refresh_cmd,
    report_cmd,
    run_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)

app = typer.Typer(
    name="sitetune",
    help="Turn a website's pages into a domain-tuned embedding model and a cited search service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (crawl_cmd, corpus_cmd, train_cmd, evaluate_cmd, index_cmd, refresh_cmd, search_cmd, answer_cmd,
               serve_cmd, export_cmd, run_cmd, report_cmd):
    module.register(app)

if __name__ == "__main__":
    app()
