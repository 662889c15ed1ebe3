"""Exported encoder files: where they live, their manifest, and the checks made before loading them.

An export lives beside its model, in ``MODEL/sitetune-export/<backend>/``, with ``manifest.json``
recording each file's sha256 and the sha256 of the model weights it was made from. Loading checks both,
so a truncated download, a hand-edited file or a model retrained after its export is an error that
says which file and how to rebuild it, never a silently different embedding.

The packaged base model sits in site-packages, which may be read-only or shared between projects; its
exports go to ``$SITETUNE_CACHE_DIR`` (default ``~/.cache/sitetune``) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sitetune.atomic import sha256_file
from sitetune.environment import cache_dir
from sitetune.errors import SitetuneError

EXPORT_DIRNAME = "sitetune-export"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ExportError(SitetuneError):
    """An exported backend is missing, corrupted or stale; the message says how to rebuild it."""


def model_fingerprint(model_path: Path) -> str:
    """sha256 over the model's weight files: what an export must have been made from."""
    digest = hashlib.sha256()
    found = False
    for name in _WEIGHT_FILES:
        path = model_path / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(sha256_file(path).encode())
            found = True
    if not found:
        raise SitetuneError(f"{model_path} has no weights ({' or '.join(_WEIGHT_FILES)})")
    return digest.hexdigest()


def _is_packaged_base(model_path: Path) -> bool:
    from sitetune.models import base_model_path

    try:
        return model_path.resolve() == base_model_path().resolve()
    except SitetuneError:
        return False


def export_root(model_path: Path) -> Path:
    """The folder holding a model's exports: beside it, or the cache for the packaged base model."""
    if _is_packaged_base(model_path) or not os.access(model_path, os.W_OK):
        key = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:12]
        return cache_dir() / EXPORT_DIRNAME / f"{model_path.name}-{key}"
    return model_path / EXPORT_DIRNAME


def export_dir(model_path: Path, backend: str) -> Path:
    """``export_root(model_path) / backend``."""
    return export_root(model_path) / backend


def rebuild_hint(model_path: Path, backend: str) -> str:
    """The command that rebuilds an export, and the escape hatch."""
    return (
        f"rebuild it with `sitetune export {model_path} --backend {backend}`, "
        "or pass --fallback-to-torch to encode with torch instead"
    )


def write_manifest(
    directory: Path, backend: str, files: Iterable[str], model_path: Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``manifest.json`` in ``directory`` listing ``files`` (relative names) with their sha256."""
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "backend": backend,
        "model_sha256": model_fingerprint(model_path),
        "files": {name: sha256_file(directory / name) for name in sorted(files)},
        **(extra or {}),
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(
    directory: Path, backend: str, model_path: Path, *, check_model: bool = True, hint: str | None = None
) -> dict[str, Any]:
    """Read and verify an export: every listed file present with its recorded sha256.

    Args:
        directory: The export folder.
        backend: The backend it should hold.
        model_path: The model it must have been made from.
        check_model: Also require the model weights to match (skipped only by callers that just hashed).
        hint: How to rebuild it, for the error messages (default :func:`rebuild_hint`).

    Returns:
        The manifest.

    Raises:
        ExportError: Missing folder or manifest, a missing or altered file, a different backend, or an
            export made from other weights; the message names the file and the rebuild command.
    """
    hint = hint or rebuild_hint(model_path, backend)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ExportError(f"no '{backend}' export for {model_path} (expected {path}): {hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{path} is not a valid export manifest ({exc}): {hint}") from exc
    if manifest.get("backend") != backend:
        raise ExportError(f"{path} holds a '{manifest.get('backend')}' export, not '{backend}': {hint}")
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise ExportError(f"exported file {file} is missing: {hint}")
        if sha256_file(file) != expected:
            raise ExportError(f"exported file {file} is corrupted (sha256 differs from {path}): {hint}")
    if check_model and manifest.get("model_sha256") != model_fingerprint(model_path):
        raise ExportError(
            f"the '{backend}' export in {directory} was made from other weights than {model_path}: {hint}"
        )
    return dict(manifest)


def calibration_texts(corpus_path: str | Path, model_path: Path, limit: int = 150) -> list[str]:
    """Texts to calibrate int8 or distil on: the corpus's chunks as the model sees documents, plus titles.

    Titles are short, query-like inputs, so activation ranges cover queries as well as documents. Spread
    evenly over the corpus: ``limit`` documents and a third as many titles (more adds export time, not
    accuracy).
    """
    from sitetune.corpus import Corpus
    from sitetune.modelinfo import load_model_info

    info = load_model_info(model_path)
    chunks = Corpus.load(corpus_path).chunks
    step = max(1, len(chunks) // limit)
    picked = chunks[::step][:limit]
    docs = [info.document(c) for c in picked]
    titles = list(dict.fromkeys(info.query(c.section_title) for c in picked if c.section_title.strip()))
    return docs + titles[: limit // 3]


def require_texts(texts: Sequence[str] | None, backend: str) -> list[str]:
    """Calibration texts, or an error saying to pass ``--corpus``."""
    if not texts:
        raise SitetuneError(f"the '{backend}' export is calibrated on your own sections: pass --corpus PATH")
    return list(texts)
