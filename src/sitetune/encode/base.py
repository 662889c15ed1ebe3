"""The encoder interface, the backend registry, and export.

Every stage that embeds goes through :func:`load_encoder`, so the backend is one option
(``EncoderConfig.backend``, ``--backend`` on the command line). Exports are made by
:func:`export_model` (``sitetune export MODEL --backend NAME``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sitetune.config import Backend, EncoderConfig, ExportBackend
from sitetune.encode.export import ExportError, export_dir, require_texts
from sitetune.encode.torch_backend import SentenceTransformersEncoder, TorchEncoder
from sitetune.errors import MissingDependencyError, SitetuneError
from sitetune.modelinfo import ModelInfo
from sitetune.models import resolve_model_path

log = logging.getLogger(__name__)

AUTO = Backend.AUTO.value
TORCH = Backend.TORCH.value
OPENVINO = Backend.OPENVINO.value
OPENVINO_INT8 = Backend.OPENVINO_INT8.value
STATIC = Backend.STATIC.value
SENTENCE_TRANSFORMERS = Backend.SENTENCE_TRANSFORMERS.value
#: Every backend name ``load_encoder`` accepts.
BACKENDS = tuple(b.value for b in Backend)
#: Backends that need ``sitetune export`` first.
EXPORTED_BACKENDS = tuple(b.value for b in ExportBackend)
#: Backends an export needs calibration texts (``--corpus``) for.
CALIBRATED_BACKENDS = (OPENVINO_INT8, STATIC)

__all__ = ["BACKENDS", "Encoder", "TorchEncoder", "export_model", "load_encoder"]


class Encoder(Protocol):
    """Turns texts into unit-length float32 vectors.

    Attributes:
        dim: Vector size.
        info: How the model wants documents and queries written.
        model_path: The model folder it was loaded from.
    """

    dim: int
    info: ModelInfo
    model_path: Path

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode raw strings (already formatted) into an (n, dim) float32 array of unit rows."""
        ...


def _openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _load_exported(backend: str, model: str | Path, config: EncoderConfig) -> Encoder:
    if backend in (OPENVINO, OPENVINO_INT8):
        from sitetune.encode.openvino_backend import OpenVINOEncoder

        return OpenVINOEncoder(model, config, int8=backend == OPENVINO_INT8)
    from sitetune.encode.static import StaticEncoder

    return StaticEncoder(model, config)


def _load_auto(model: str | Path, config: EncoderConfig) -> Encoder:
    """The fastest backend whose quality holds, as measured on benchmarks (docs/encode.md).

    ``openvino-int8`` where its export exists (it needs the site's texts, so only ``sitetune export
    --corpus`` makes it: nDCG@10 within 0.001 of fp32, 1.5x ``openvino``); else ``openvino`` (bf16 on CPUs
    with bf16 units), exported on first use in seconds; else, without the ``openvino`` package, ``torch``.
    """
    if not _openvino_available():
        log.info("openvino is not installed: encoding with torch")
        return TorchEncoder(model, config)
    path = resolve_model_path(model)
    if (export_dir(path, OPENVINO_INT8) / "manifest.json").is_file():
        return _load_exported(OPENVINO_INT8, path, config)
    if not (export_dir(path, OPENVINO) / "manifest.json").is_file():
        try:
            export_model(path, OPENVINO)
        except (SitetuneError, OSError, RuntimeError) as exc:
            log.warning("could not export %s for openvino (%s): encoding with torch", path, exc)
            return TorchEncoder(model, config)
    return _load_exported(OPENVINO, path, config)


def load_encoder(model: str | Path, config: EncoderConfig | None = None) -> Encoder:
    """Load an encoder for ``model`` with the backend ``config.backend`` names.

    Args:
        model: ``"base"`` or a model folder.
        config: Backend, precision, batch size, threads, and ``fallback``: whether a missing or broken
            export (or missing optional package) may fall back to torch instead of failing.

    Returns:
        An :class:`Encoder`; load it once and reuse it (loading costs seconds).

    Raises:
        ExportError: The backend's export is missing, corrupted or stale, and ``fallback`` is off.
        MissingDependencyError: The backend's package is missing, and ``fallback`` is off.
        SitetuneError: Unknown backend, or the model folder cannot be loaded.
    """
    config = config or EncoderConfig()
    backend = config.backend
    if backend == TORCH:
        return TorchEncoder(model, config)
    if backend == SENTENCE_TRANSFORMERS:
        return SentenceTransformersEncoder(model, config)
    if backend not in BACKENDS:
        raise SitetuneError(f"unknown encoder backend '{backend}' (available: {', '.join(BACKENDS)})")
    try:
        if backend == AUTO:
            return _load_auto(model, config)
        return _load_exported(backend, model, config)
    except (ExportError, MissingDependencyError) as exc:
        if not config.fallback:
            raise
        log.warning("%s; falling back to torch as asked", exc)
        return TorchEncoder(model, config)


def export_model(
    model: str | Path,
    backend: str,
    *,
    texts: Sequence[str] | None = None,
    config: EncoderConfig | None = None,
) -> dict[str, Any]:
    """Export ``model`` for ``backend`` into ``MODEL/sitetune-export/<backend>/``, replacing any old one.

    Args:
        model: ``"base"`` or a model folder.
        backend: One of :data:`EXPORTED_BACKENDS`.
        texts: The site's own texts (documents as the model sees them): required for ``openvino-int8``
            (calibration) and ``static`` (token frequencies); see
            :func:`sitetune.encode.export.calibration_texts`.
        config: Precision, threads and batch size used while exporting (static distillation).

    Returns:
        The manifest, with ``path`` added.

    Raises:
        SitetuneError: Not an exportable backend, or calibration texts missing.
        MissingDependencyError: ``openvino`` (or ``nncf`` for int8) is not installed.
    """
    from sitetune.atomic import atomic_dir

    if backend not in EXPORTED_BACKENDS:
        exportable = ", ".join(EXPORTED_BACKENDS)
        raise SitetuneError(f"backend '{backend}' has nothing to export (exportable: {exportable})")
    path = resolve_model_path(model)
    calibration = require_texts(texts, backend) if backend in CALIBRATED_BACKENDS else []
    target = export_dir(path, backend)
    # Built in a temporary folder and swapped in whole: a crash mid-export leaves the old export intact.
    with atomic_dir(target, overwrite=True) as tmp:
        if backend == STATIC:
            from sitetune.encode.static import export_static

            manifest = export_static(path, tmp, texts=calibration, config=config)
        else:
            from sitetune.encode.openvino_backend import export_openvino

            manifest = export_openvino(path, tmp, int8=backend == OPENVINO_INT8, texts=calibration)
    return {**manifest, "path": str(target)}
