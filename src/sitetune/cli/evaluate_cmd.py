"""``sitetune evaluate``: each model alone, BM25 alone and the served search side by side on every query set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json
from sitetune.config import Backend
from sitetune.evaluation.querysets import PACKAGED_QUERY_FILES


@handle_errors
def evaluate_command(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus file: .csv, .jsonl or .parquet")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (report.md, metrics.json, PNG plots)")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="'base' (packaged all-MiniLM-L6-v2) or a model folder; repeat for several")] = None,
    queries: Annotated[list[str] | None, typer.Option(
        "--queries", help="External query file (JSON), or a packaged set: "
                          f"{', '.join(PACKAGED_QUERY_FILES)}; repeatable")] = None,
    split_from: Annotated[Path | None, typer.Option(
        "--split-from", help="Pairs folder from training: its heldout.jsonl gives the title queries")] = None,
    hybrid: Annotated[bool, typer.Option(
        "--hybrid/--no-hybrid", help="Also score <model>+search, the served search pipeline")] = True,
    answers: Annotated[bool, typer.Option(
        "--answers/--no-answers", help="Answer-level metrics for the query files (served answerer)")] = True,
    backend: Annotated[Backend | None, typer.Option("--backend", help="Encoder backend (default: search's, auto)")] = (
        None
    ),
    same_page: Annotated[int, typer.Option("--same-page", help="Chunks sampled for the same-page set")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the page split and samples")] = 13,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print {label: {query_set: {ndcg@10, mrr@10, recall@10}}} on stdout")] = False,
) -> None:
    """Index the corpus with each model and score dense, BM25 and the served search; answers too.

    Reports nDCG@10, answers@1, MRR@10, Recall@k and MAP@100 per query set, and for query files the
    served answerer's answer metrics. Stores are kept in OUT/stores (a re-run re-embeds only changes).

    Example: sitetune evaluate --corpus pages.csv --model base --model models/tuned
    --queries my_questions.json --out reports/eval
    """
    from sitetune.config import EncoderConfig
    from sitetune.evaluation import evaluate
    from sitetune.evaluation.report import terminal_summary

    config = EncoderConfig(backend=backend) if backend else None
    if not queries:
        typer.echo("note: no --queries file; packaged sets: " + ", ".join(PACKAGED_QUERY_FILES), err=True)
    result = evaluate(
        corpus, model or ["base"], queries or [], split_from, out, hybrid, encoder_config=config, answers=answers,
        same_page_n=same_page, seed=seed, progress=True, log=lambda msg: typer.echo(msg, err=True))
    if as_json:
        print_json(result.summary())
    else:
        typer.echo(terminal_summary(result))


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_command)
