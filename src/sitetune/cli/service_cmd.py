"""``sitetune index`` and ``sitetune search``: build a store from a corpus, query it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json
from sitetune.config import EncoderConfig, Precision, SearchConfig

_STORE_HELP = "Store: a directory (embedded, default), milvus://PATH.db (Milvus Lite) or http://HOST:19530"


def index(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus file: .csv, .jsonl or .parquet")],
    store: Annotated[str, typer.Option("--store", help=_STORE_HELP)],
    model: Annotated[str, typer.Option("--model", help="'base' or a model folder")] = "base",
    backend: Annotated[str, typer.Option("--backend", help="Encoder backend (see sitetune.encode)")] = (
        EncoderConfig.backend
    ),
    precision: Annotated[Precision, typer.Option("--precision", help="auto: bf16 where the CPU has it")] = (
        Precision.AUTO
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass")] = 32,
    bm25_fields: Annotated[
        str, typer.Option("--bm25-fields", help="'page+title+text', 'title+text' or 'text'")
    ] = ("page+title+text"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Embed a corpus's unique chunks and store vectors, records and a BM25 index.

    Re-indexing embeds only new or changed chunks; the previous generation stays until the new one is
    complete. Example: sitetune index --corpus pages.csv --model base --store runs/store
    """
    from sitetune.index import build_index

    report = build_index(
        corpus,
        model,
        store,
        EncoderConfig(backend=backend, precision=precision, batch_size=batch_size),
        progress=progress,
        bm25_fields=bm25_fields,
    )
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    typer.echo(
        f"indexed {report.chunks:,} chunks into {report.store} (generation {report.generation}): "
        f"{report.embedded:,} embedded, {report.reused:,} reused, {report.removed:,} removed "
        f"in {report.seconds:.1f} s"
    )


def search(
    question: Annotated[str, typer.Argument(help="The question")],
    store: Annotated[str, typer.Option("--store", help=_STORE_HELP)],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results")] = SearchConfig.k,
    page: Annotated[str | None, typer.Option("--page", help="Only sections of this page/programme")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"results": [...]}')] = False,
    model: Annotated[str | None, typer.Option("--model", help="Query model (default: the store's)")] = None,
    backend: Annotated[str, typer.Option("--backend", help="Encoder backend (see sitetune.encode)")] = (
        EncoderConfig.backend
    ),
    dense_weight: Annotated[float, typer.Option("--dense-weight", min=0.0)] = SearchConfig.dense_weight,
    bm25_weight: Annotated[float, typer.Option("--bm25-weight", min=0.0)] = SearchConfig.bm25_weight,
    rrf_k: Annotated[int, typer.Option("--rrf-k", min=1, help="RRF constant")] = SearchConfig.rrf_k,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="Depth of each ranking")] = (
        SearchConfig.candidates
    ),
    program_boost: Annotated[
        float,
        typer.Option("--program-boost", min=0.0, help="Added to sections of a programme the query names"),
    ] = (SearchConfig.program_boost),
    rerank: Annotated[
        bool,
        typer.Option("--rerank/--no-rerank", help="Rerank the top candidates with the model folder's reranker"),
    ] = SearchConfig.rerank,
    rerank_depth: Annotated[
        int, typer.Option("--rerank-depth", min=1, help="Fused candidates the reranker reads")
    ] = SearchConfig.rerank_depth,
) -> None:
    """Hybrid dense + BM25 search, results unique by text, each with the pages it appears on.

    Example: sitetune search "When is the application deadline?" --store runs/store -k 5
    """
    from sitetune.search import Searcher

    config = SearchConfig(
        k=k,
        rrf_k=rrf_k,
        dense_weight=dense_weight,
        bm25_weight=bm25_weight,
        candidates=candidates,
        program_boost=program_boost,
        rerank=rerank,
        rerank_depth=rerank_depth,
    )
    with Searcher.open(store, EncoderConfig(backend=backend), model=model, config=config) as searcher:
        hits = searcher.search(question, k=k, page=page)
    if as_json:
        print_json({"results": [dataclasses.asdict(h) for h in hits]})
        return
    if not hits:
        typer.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        typer.echo(f"{rank}. [{hit.score:.4f}] {hit.page_name} — {hit.section_title}")
        typer.echo(f"   {hit.url}")
        text = " ".join(hit.text.split())
        typer.echo(f"   {text[:300]}{'…' if len(text) > 300 else ''}")
        if hit.also_on:
            names = ", ".join(p.page_name for p in hit.also_on[:3])
            more = f" and {len(hit.also_on) - 3} more" if len(hit.also_on) > 3 else ""
            typer.echo(f"   also on: {names}{more}")


def register(app: typer.Typer) -> None:
    """Add ``index`` and ``search`` to ``app``."""
    app.command("index")(handle_errors(index))
    app.command("search")(handle_errors(search))
