"""``sitetune search``: query a store."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from sitetune.cli.common import (
    DEFAULT_BACKEND,
    BackendOption,
    FallbackOption,
    QueryModelOption,
    RerankDepthOption,
    RerankWeightOption,
    SentenceWeightOption,
    StoreOption,
    handle_errors,
    print_json,
)
from sitetune.config import EncoderConfig, SearchConfig

_ENCODER = EncoderConfig()  # flag defaults come from the configs
_SEARCH = SearchConfig()


@handle_errors
def search(
    question: Annotated[str, typer.Argument(help="The question")],
    store: StoreOption,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results")] = _SEARCH.k,
    page: Annotated[str | None, typer.Option("--page", help="Only sections of this page/programme")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"results": [...]}')] = False,
    model: QueryModelOption = None,
    backend: BackendOption = DEFAULT_BACKEND,
    fallback: FallbackOption = _ENCODER.fallback,
    dense_weight: Annotated[float, typer.Option("--dense-weight", min=0.0)] = _SEARCH.dense_weight,
    bm25_weight: Annotated[float, typer.Option("--bm25-weight", min=0.0)] = _SEARCH.bm25_weight,
    rrf_k: Annotated[int, typer.Option("--rrf-k", min=1, help="RRF constant")] = _SEARCH.rrf_k,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="Depth of each ranking")] = (
        _SEARCH.candidates
    ),
    program_boost: Annotated[
        float,
        typer.Option("--program-boost", min=0.0, help="Added to sections of a programme the query names"),
    ] = _SEARCH.program_boost,
    intent_weight: Annotated[
        float,
        typer.Option(
            "--intent-weight", min=0.0,
            help="Weight of a named programme page's sections ranked by the rest of the question (0: off)",
        ),
    ] = _SEARCH.intent_weight,
    sentence_weight: SentenceWeightOption = _SEARCH.sentence_weight,
    rerank: Annotated[
        bool,
        typer.Option("--rerank/--no-rerank", help="Rerank the top candidates with the model folder's reranker"),
    ] = _SEARCH.rerank,
    rerank_depth: RerankDepthOption = _SEARCH.rerank_depth,
    rerank_weight: RerankWeightOption = _SEARCH.rerank_weight,
) -> None:
    """Hybrid dense + BM25 search, results unique by text, each with the pages it appears on.

    Example: sitetune search "When is the application deadline?" --store runs/store -k 5
    """
    from sitetune.search import Searcher

    config = dataclasses.replace(
        _SEARCH,
        k=k,
        rrf_k=rrf_k,
        dense_weight=dense_weight,
        bm25_weight=bm25_weight,
        candidates=candidates,
        program_boost=program_boost,
        intent_weight=intent_weight,
        sentence_weight=sentence_weight,
        rerank=rerank,
        rerank_depth=rerank_depth,
        rerank_weight=rerank_weight,
    )
    encoder = dataclasses.replace(_ENCODER, backend=backend, fallback=fallback)
    with Searcher.open(store, encoder, model=model, config=config) as searcher:
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
    """Add ``search`` to ``app``."""
    app.command("search")(search)
