"""The cross-encoder on OpenVINO: ``MODEL/reranker`` converted once to OpenVINO IR, run in bf16 (or fp32).

As for the bi-encoder (:mod:`sitetune.encode.openvino_backend`), the torch model is converted directly
with ``openvino.convert_model`` (no ``optimum``): the graph is the ``CrossEncoder``'s own
sentence-transformers modules, token ids, segment ids and mask in, one logit per pair out. The IR is
saved in fp32; bf16 or fp32 is chosen when it is loaded, from the CPU and ``EncoderConfig.precision``.

The export lives in ``MODEL/reranker/sitetune-export/openvino/`` with the same ``manifest.json`` as the
bi-encoder's (each file's sha256 and the sha256 of the reranker weights it was made from), so an export
left behind by a retrained or hand-replaced reranker is refused, never silently used.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.config import EncoderConfig, RerankerKind
from sitetune.encode.export import MANIFEST_FILE, ExportError, export_dir, read_manifest, write_manifest
from sitetune.encode.openvino_backend import _import_openvino
from sitetune.encode.threads import choose_threads
from sitetune.models import use_bf16

__all__ = ["MANIFEST_FILE", "OpenVINOCrossEncoderReranker", "export_reranker", "reranker_export_dir"]

#: The backend name of the reranker's export (its manifest's ``backend``).
OPENVINO = "openvino"
_XML, _BIN, _TOKENIZER = "model.xml", "model.bin", "tokenizer"
#: The inputs a cross-encoder's graph may take, in the order they are declared.
_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def reranker_export_dir(folder: Path) -> Path:
    """Where the OpenVINO export of the cross-encoder in ``folder`` (``MODEL/reranker``) lives."""
    return export_dir(folder, OPENVINO)


def reranker_rebuild_hint(folder: Path) -> str:
    """The command that rebuilds the reranker's export (``sitetune export`` on the bi-encoder's folder)."""
    return (
        f"rebuild it with `sitetune export {folder.parent} --backend openvino` (it exports {folder.name}/ too), "
        "or pass --fallback-to-torch to rerank with torch instead"
    )


def export_reranker(folder: str | Path) -> dict[str, Any]:
    """Export the cross-encoder in ``folder`` for OpenVINO, replacing any old export.

    Built in a temporary folder and swapped in whole, so a crash mid-export leaves the old one intact.

    Returns:
        The manifest written, with ``path`` added.

    Raises:
        MissingDependencyError: ``openvino`` is not installed.
    """
    from sitetune.atomic import atomic_dir

    folder = Path(folder)
    target = reranker_export_dir(folder)
    with atomic_dir(target, overwrite=True) as tmp:
        manifest = _convert(folder, tmp)
    return {**manifest, "path": str(target)}


def _convert(folder: Path, out: Path) -> dict[str, Any]:
    """Convert the ``CrossEncoder`` in ``folder`` to OpenVINO IR in ``out``, with the tokenizer and manifest."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from sitetune.models import prefer_local_files

    ov = _import_openvino()
    prefer_local_files()
    ce = CrossEncoder(str(folder), device="cpu", local_files_only=True).eval()
    tokenizer = ce.tokenizer
    max_length = int(ce.max_seq_length or 512)
    example = tokenizer(["a question", "two"], ["an example section text", "more"], padding=True,
                        return_tensors="pt")
    names = [name for name in _INPUTS if name in example]

    class Scored(torch.nn.Module):
        """The cross-encoder's modules as a module of its token inputs, one logit per pair out."""

        def __init__(self) -> None:
            super().__init__()
            self.ce = ce

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
        ) -> torch.Tensor:
            features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "modality": "text"}
            if token_type_ids is not None:  # BERT's segment ids; models without them never pass any
                features["token_type_ids"] = token_type_ids
            out: torch.Tensor = self.ce(features)["scores"]
            return out.reshape(-1)

    # Tracing warns that shape checks become constants; the shapes are declared dynamic below.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        model = ov.convert_model(
            Scored(),
            example_input={name: example[name] for name in names},
            input=[(name, [-1, -1], ov.Type.i64) for name in names],
        )
    # fp32 on disk: the bf16/fp32 choice is made at load time from the CPU, not baked into the file.
    ov.save_model(model, str(out / _XML), compress_to_fp16=False)
    tokenizer.save_pretrained(str(out / _TOKENIZER))
    files = [_XML, _BIN] + [f"{_TOKENIZER}/{p.name}" for p in sorted((out / _TOKENIZER).iterdir())]
    extra = {"kind": RerankerKind.CROSS_ENCODER.value, "max_length": max_length, "inputs": names}
    return write_manifest(out, OPENVINO, files, folder, extra)


class OpenVINOCrossEncoderReranker:
    """The exported cross-encoder on OpenVINO: bf16 on CPUs with bf16 units (per ``precision``), else fp32.

    Args:
        folder: The cross-encoder's folder (``MODEL/reranker``); its export must be there and fresh.
        config: Precision, threads and batch size (the encoder's settings).

    Raises:
        ExportError: The export is missing, corrupted or made from other weights than ``folder``'s.
        MissingDependencyError: ``openvino`` is not installed.
    """

    kind = RerankerKind.CROSS_ENCODER
    backend = OPENVINO

    def __init__(self, folder: str | Path, config: EncoderConfig | None = None) -> None:
        from transformers import AutoTokenizer

        ov = _import_openvino()
        self.config = config or EncoderConfig()
        self.folder = Path(folder)
        self.export_path = reranker_export_dir(self.folder)
        hint = reranker_rebuild_hint(self.folder)
        manifest = read_manifest(self.export_path, OPENVINO, self.folder, hint=hint)
        self.max_length = int(manifest["max_length"])
        self.inputs: list[str] = list(manifest.get("inputs", _INPUTS))
        self.threads = choose_threads(self.config.threads)
        bf16 = use_bf16(self.config.precision)
        self.precision = "bf16" if bf16 else "fp32"
        properties = {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            tokenizer_dir = str(self.export_path / _TOKENIZER)
            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
            compiled = ov.Core().compile_model(str(self.export_path / _XML), "CPU", properties)
        except Exception as exc:  # hashes matched, so this is a library or version mismatch
            raise ExportError(f"cannot load the reranker's export in {self.export_path}: {exc}; {hint}") from exc
        self._request = compiled.create_infer_request()
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        # One infer request is not re-entrant; requests from several threads take turns.
        self._lock = threading.Lock()

    def scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """The cross-encoder's logit for each (query, document) pair, in order."""
        out = np.zeros(len(documents), dtype=np.float32)
        if not documents:
            return out
        enc = self._tokenizer([query] * len(documents), list(documents), truncation="longest_first",
                              max_length=self.max_length)
        rows = {name: [list(x) for x in enc[name]] for name in self.inputs}
        lengths = np.array([len(ids) for ids in rows["input_ids"]])
        # Longest first, each batch padded only to its own longest pair.
        order = np.argsort(-lengths, kind="stable")
        with self._lock:
            for start in range(0, len(order), self.config.batch_size):
                index = order[start : start + self.config.batch_size]
                width = int(lengths[index].max())
                feed = {}
                for name in self.inputs:
                    fill = self._pad_id if name == "input_ids" else 0
                    batch = np.full((len(index), width), fill, dtype=np.int64)
                    for r, i in enumerate(index):
                        batch[r, : lengths[i]] = rows[name][i]
                    feed[name] = batch
                result = self._request.infer(feed)
                out[index] = np.asarray(result[0], dtype=np.float32).reshape(-1)
        return out
