"""``sitetune export MODEL --backend NAME``: write a fast encoder backend's files beside the model.

With an OpenVINO backend, a model folder holding a reranker (``MODEL/reranker``) gets the reranker's
OpenVINO export too (``--no-reranker`` skips it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

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
    reranker: Annotated[
        bool,
        typer.Option(
            "--reranker/--no-reranker",
            help="With openvino or openvino-int8: also export (or --check) MODEL/reranker for openvino "
            "when the folder has one",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Export MODEL for a fast encoder backend into MODEL/sitetune-export/BACKEND/ (with a sha256 manifest).

    The reranker's export (MODEL/reranker/sitetune-export/openvino/) is OpenVINO IR in fp32, run in bf16
    where the CPU has it, whichever OpenVINO backend the bi-encoder is exported for.

    Example: sitetune export models/tuned --backend openvino-int8 --corpus pages.csv
    """
    from sitetune.encode import export_model
    from sitetune.encode.export import calibration_texts, export_dir, read_manifest
    from sitetune.models import resolve_model_path
    from sitetune.rerank import RERANKER_DIR, has_reranker

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
    if reranker and backend is not ExportBackend.STATIC and has_reranker(path):
        manifest["reranker"] = _reranker(path / RERANKER_DIR, check)
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        print_json(manifest)
        return
    verb = "verified" if check else "exported"
    typer.echo(f"{verb} {backend} for {path} in {manifest['seconds']:.1f}s: {manifest['path']}")
    typer.echo(f"files: {', '.join(manifest['files'])}")
    if "reranker" in manifest:
        typer.echo(f"{verb} the reranker for openvino: {manifest['reranker']['path']}")


def _reranker(folder: Path, check: bool) -> dict[str, Any]:
    """Export (or verify) the cross-encoder in ``folder`` for OpenVINO; its manifest with ``path``."""
    from sitetune.encode.export import read_manifest
    from sitetune.rerank.openvino_backend import OPENVINO, export_reranker, reranker_export_dir, reranker_rebuild_hint

    if not check:
        return export_reranker(folder)
    target = reranker_export_dir(folder)
    return {**read_manifest(target, OPENVINO, folder, hint=reranker_rebuild_hint(folder)), "path": str(target)}


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export)
