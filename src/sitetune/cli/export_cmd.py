"""``sitetune export MODEL --backend NAME``: write a fast encoder backend's files beside the model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sitetune.cli.common import handle_errors, print_json
from sitetune.config import ExportBackend


@handle_errors
def export(
    model: Annotated[str, typer.Argument(help="Model folder, or 'base' for the packaged all-MiniLM-L6-v2")],
    backend: Annotated[ExportBackend, typer.Option("--backend", help="The backend to export for")] = (
        ExportBackend.OPENVINO
    ),
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="The site's corpus file: calibrates openvino-int8, weights static"),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Only verify an existing export")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Export MODEL for a fast encoder backend into MODEL/sitetune-export/BACKEND/ (with a sha256 manifest).

    Example: sitetune export models/tuned --backend openvino-int8 --corpus pages.csv
    """
    from sitetune.encode import export_model
    from sitetune.encode.export import calibration_texts, export_dir, read_manifest
    from sitetune.models import resolve_model_path

    path = resolve_model_path(model)
    started = time.perf_counter()
    if check:
        manifest = {
            **read_manifest(export_dir(path, backend), backend, path),
            "path": str(export_dir(path, backend)),
        }
    else:
        texts = calibration_texts(corpus, path) if corpus is not None else None
        manifest = export_model(path, backend, texts=texts)
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        print_json(manifest)
        return
    verb = "verified" if check else "exported"
    typer.echo(f"{verb} {backend} for {path} in {manifest['seconds']:.1f}s: {manifest['path']}")
    typer.echo(f"files: {', '.join(manifest['files'])}")


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export)
