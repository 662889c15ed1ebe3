"""``sitetune index``: embed a corpus into a store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import (
    DEFAULT_BACKEND,
    BackendOption,
    EncodeBatchOption,
    FallbackOption,
    PrecisionOption,
    StoreOption,
    handle_errors,
    print_json,
)
from sitetune.config import DEFAULT_BM25_FIELDS, Bm25Fields, EncoderConfig
from sitetune.index.stream import DEFAULT_CHECKPOINT_ROWS

_ENCODER = EncoderConfig()  # flag defaults come from the config
_BM25_FIELDS = Bm25Fields(DEFAULT_BM25_FIELDS)


@handle_errors
def index(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus file: .csv, .jsonl or .parquet")],
    store: StoreOption,
    model: Annotated[str, typer.Option("--model", help="'base' or a model folder")] = "base",
    backend: BackendOption = DEFAULT_BACKEND,
    fallback: FallbackOption = _ENCODER.fallback,
    precision: PrecisionOption = _ENCODER.precision,
    batch_size: EncodeBatchOption = _ENCODER.batch_size,
    bm25_fields: Annotated[Bm25Fields, typer.Option("--bm25-fields", help="What BM25 matches")] = _BM25_FIELDS,
    checkpoint_rows: Annotated[int, typer.Option(
        "--checkpoint-rows", min=1,
        help="Embedded stores: new chunks per batch; a killed run resumes from the last batch written")] = (
        DEFAULT_CHECKPOINT_ROWS
    ),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress (chunks/s)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Embed a corpus's unique chunks and store vectors, records and a BM25 index.

    Re-indexing embeds only new or changed chunks; the previous generation stays until the new one is
    complete. An embedded store is built in batches, in memory that does not grow with the corpus; run the
    same command again after a kill and it carries on from the last batch.
    Example: sitetune index --corpus pages.csv --model base --store runs/store
    """
    from sitetune.index import build_index

    encoder = dataclasses.replace(_ENCODER, backend=backend, fallback=fallback, precision=precision,
                                  batch_size=batch_size)
    report = build_index(corpus, model, store, encoder, progress=progress, bm25_fields=bm25_fields.value,
                         checkpoint_rows=checkpoint_rows)
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    typer.echo(
        f"indexed {report.chunks:,} chunks into {report.store} (generation {report.generation}): "
        f"{report.embedded:,} embedded, {report.reused:,} reused, {report.removed:,} removed "
        f"in {report.seconds:.1f} s" + (f" (resumed: {report.resumed:,} chunks from an interrupted run)"
                                         if report.resumed else "")
    )


def register(app: typer.Typer) -> None:
    """Add ``index`` to ``app``."""
    app.command("index")(index)
