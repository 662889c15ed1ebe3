"""``sitetune evaluate``: models, BM25 and their hybrids side by side on every query set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json


@handle_errors
def evaluate_command(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus file: .csv, .jsonl or .parquet")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (report.md, metrics.json, PNG plots)")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="'base' (packaged all-MiniLM-L6-v2) or a model folder; repeat for several")] = None,
    queries: Annotated[list[str] | None, typer.Option(
        "--queries", help="External query file (JSON); 'cbs' = the packaged CBS questions; repeatable",
    )] = None,
    split_from: Annotated[Path | None, typer.Option(
        "--split-from", help="Pairs folder from training: its heldout.jsonl gives the title queries")] = None,
    hybrid: Annotated[bool, typer.Option(
        "--hybrid/--no-hybrid", help="Also score each model fused with BM25 (what search serves)")] = True,
    backend: Annotated[str | None, typer.Option("--backend", help="Encoder backend (default torch)")] = None,
    same_page: Annotated[int, typer.Option("--same-page", help="Chunks sampled for the same-page set")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the page split and samples")] = 13,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print {label: {query_set: {ndcg@10, mrr@10, recall@10}}} on stdout")] = False,
) -> None:
    """Rank the deduplicated corpus with each model and BM25; report nDCG@10, MRR@10, Recall@k, MAP@100.

    Example: sitetune evaluate --corpus ../shared/data/cbs_graduate_programs.csv --model base
    --model models/card --queries cbs --out reports/eval
    """
    from sitetune.config import EncoderConfig
    from sitetune.evaluation import evaluate
    from sitetune.evaluation.report import terminal_summary

    config = EncoderConfig(backend=backend) if backend else None
    if not queries:
        typer.echo("note: no --queries file; '--queries cbs' adds the packaged CBS question set", err=True)
    result = evaluate(
        corpus, model or ["base"], queries or [], split_from, out, hybrid, encoder_config=config,
        same_page_n=same_page, seed=seed, progress=True, log=lambda msg: typer.echo(msg, err=True))
    if as_json:
        print_json(result.summary())
    else:
        typer.echo(terminal_summary(result))


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_command)
