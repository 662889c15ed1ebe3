"""``sitetune corpus stats``: what a corpus file holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json

corpus_app = typer.Typer(help="Inspect a corpus file (CSV, JSONL or Parquet of section records).",
                         no_args_is_help=True)


@corpus_app.command("stats")
@handle_errors
def stats(
    path: Annotated[Path, typer.Argument(help="Corpus file: .csv, .jsonl or .parquet")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rows, pages, URLs, unique texts, duplicate groups and token lengths.

    Example: sitetune corpus stats ../shared/data/cbs_graduate_programs.csv
    """
    from sitetune.corpus import Corpus, corpus_stats

    result = corpus_stats(Corpus.load(path))
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    typer.echo(f"rows            {result.rows:>7,}")
    typer.echo(f"pages           {result.pages:>7,}")
    typer.echo(f"urls            {result.urls:>7,}")
    typer.echo(f"unique texts    {result.unique_texts:>7,}  ({result.duplicate_rows:,} duplicate rows)")
    t = result.token_length
    typer.echo(
        f"tokens/chunk    min {t['min']:.0f}  p50 {t['p50']:.0f}  p90 {t['p90']:.0f}  p99 {t['p99']:.0f}  "
        f"max {t['max']:.0f}  mean {t['mean']:.1f}"
    )
    typer.echo(f"over 256 tokens {result.over_256_tokens:>7,}")
    typer.echo(f"over 512 tokens {result.over_512_tokens:>7,}")
    if result.largest_duplicate_groups:
        typer.echo("largest duplicate groups:")
        for g in result.largest_duplicate_groups:
            typer.echo(f"  {g['occurrences']:>3}x on {g['pages']:>3} pages  {g['section_title']!s:.40}  "
                       f"[{g['chunk_id']}]")


def register(app: typer.Typer) -> None:
    """Add ``corpus`` to ``app``."""
    app.add_typer(corpus_app, name="corpus")
