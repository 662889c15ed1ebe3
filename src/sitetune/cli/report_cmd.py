"""``sitetune report``: what the served page's query log tells the site team."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json


@handle_errors
def report(
    query_log: Annotated[
        Path,
        typer.Option("--query-log", help="The log written by `sitetune serve --query-log` (rotated files too)."),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write report.md, report.json and the plot report.png into this folder."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="Rows in each ranked list.")] = 10,
) -> None:
    """Summarise a query log: most asked topics, questions answered "not found", answers marked unhelpful."""
    from sitetune.serve.logreport import summarise, to_text, write_report
    from sitetune.serve.querylog import read_log

    summary = summarise(read_log(query_log), top=top)
    written = write_report(summary, str(query_log), out) if out is not None else []
    if json_out:
        print_json(summary.to_dict())
        return
    typer.echo(to_text(summary, str(query_log)), nl=False)
    if written:
        typer.echo(f"\nWrote {written[0]}, {written[1]} and {written[2]}.")


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command("report")(report)
