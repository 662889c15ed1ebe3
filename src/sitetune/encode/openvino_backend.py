"""OpenVINO backends: the model converted once to OpenVINO IR, run in bf16 (or fp32), or int8.

``openvino`` (the runtime alone, no ``optimum``: its ``optimum-onnx`` pins transformers < 4.58, which
sentence-transformers 6 cannot use) converts the torch model directly with ``openvino.convert_model``.
The converted graph is the model's own sentence-transformers modules (transformer, pooling) plus L2
normalisation, so pooling matches torch exactly. ``openvino-int8`` is static post-training quantization
by NNCF, calibrated on the site's own sections (``sitetune export MODEL --backend openvino-int8
--corpus PAGES``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.encode.batching import Batch, encode_in_order, normalize_rows, tokenize
from sitetune.encode.export import ExportError, export_dir, read_manifest, rebuild_hint, write_manifest
from sitetune.encode.threads import choose_threads
from sitetune.errors import MissingDependencyError
from sitetune.modelinfo import load_model_info
from sitetune.models import resolve_model_path, use_bf16

OPENVINO = "openvino"
OPENVINO_INT8 = "openvino-int8"
_XML, _BIN, _TOKENIZER = "model.xml", "model.bin", "tokenizer"


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError("openvino==2026.4.1", "the openvino encoder backends") from exc
    return openvino


def export_openvino(model_path: Path, out: Path, *, int8: bool, texts: Sequence[str] = ()) -> dict[str, Any]:
    """Convert a sentence-transformers model to OpenVINO IR in ``out`` (and quantize it for int8).

    Args:
        model_path: The model folder.
        out: An empty folder to write ``model.xml``, ``model.bin``, ``tokenizer/`` and the manifest to.
        int8: Quantize weights and activations to int8 (needs ``texts`` to calibrate on).
        texts: Calibration texts, formatted the way the model sees them.

    Returns:
        The manifest written.
    """
    import torch

    from sitetune.encode.torch_backend import embedding_dim
    from sitetune.models import load_sentence_transformer, quiet_model_libraries

    ov = _import_openvino()
    st = load_sentence_transformer(model_path).eval()

    class Pooled(torch.nn.Module):
        """The sentence-transformers pipeline as a two-input module, ending in L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.st({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]
            return torch.nn.functional.normalize(out, dim=-1)

    tokenizer = st.tokenizer
    max_length = int(st.max_seq_length or 512)
    example = tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    # Tracing warns that shape checks become constants; the input shapes are declared dynamic below, so the
    # warnings say nothing a user can act on.
    # Tracing also reads every attribute of the model, deprecated ones and the causal-LM loss among them,
    # and transformers warns about those (quiet_model_libraries).
    with torch.no_grad(), quiet_model_libraries(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        model = ov.convert_model(
            Pooled(),
            example_input={"input_ids": example["input_ids"], "attention_mask": example["attention_mask"]},
            input=[("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)],
        )
    if int8:
        model = _quantize(model, tokenizer, texts, max_length)
    # fp32 on disk: the bf16/fp32 choice is made at load time from the CPU, not baked into the file.
    ov.save_model(model, str(out / _XML), compress_to_fp16=False)
    tokenizer.save_pretrained(str(out / _TOKENIZER))
    files = [_XML, _BIN] + [f"{_TOKENIZER}/{p.name}" for p in sorted((out / _TOKENIZER).iterdir())]
    dim = embedding_dim(st)
    extra = {"dim": dim, "max_length": max_length, "int8": int8, "calibration_texts": len(texts)}
    return write_manifest(out, OPENVINO_INT8 if int8 else OPENVINO, files, model_path, extra)


def _quantize(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    """Static int8 post-training quantization (NNCF, transformer preset) calibrated on ``texts``."""
    try:
        import nncf
    except ImportError as exc:
        raise MissingDependencyError("nncf==3.4.0", "the openvino-int8 export (int8 calibration)") from exc
    # One text per sample: no padding, so the activation statistics are the real tokens'.
    samples = []
    for text in texts:
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        samples.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return nncf.quantize(
        model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
    )


class OpenVINOEncoder:
    """An exported OpenVINO model: bf16 on CPUs with bf16 units (per ``precision``), else fp32; or int8.

    Use it as the fast default on x86 CPUs; it needs the ``openvino`` package and an export (made by
    ``sitetune export MODEL --backend openvino``, or on first use by ``--backend auto``).

    Args:
        model: ``"base"`` or a model folder.
        config: Precision, batch size, threads.
        int8: Load the ``openvino-int8`` export instead of ``openvino``.

    Raises:
        ExportError: The export is missing, corrupted or made from other weights.
        MissingDependencyError: ``openvino`` is not installed.
    """

    def __init__(self, model: str | Path, config: EncoderConfig | None = None, *, int8: bool = False) -> None:
        from transformers import AutoTokenizer

        ov = _import_openvino()
        self.config = config or EncoderConfig()
        self.backend = OPENVINO_INT8 if int8 else OPENVINO
        self.model_path = resolve_model_path(model)
        self.info = load_model_info(self.model_path)
        self.export_path = export_dir(self.model_path, self.backend)
        manifest = read_manifest(self.export_path, self.backend, self.model_path)
        self.dim = int(manifest["dim"])
        self.max_length = int(manifest["max_length"])
        self.threads = choose_threads(self.config.threads)
        bf16 = use_bf16(self.config.precision)
        self.precision = ("int8+" if int8 else "") + ("bf16" if bf16 else "fp32")
        properties = {
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",  # one stream: requests run one at a time on all cores
        }
        try:
            tokenizer_dir = str(self.export_path / _TOKENIZER)
            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
            self._compiled = ov.Core().compile_model(str(self.export_path / _XML), "CPU", properties)
        except Exception as exc:  # hashes matched, so this is a library or version mismatch
            raise ExportError(
                f"cannot load the '{self.backend}' export in {self.export_path}: {exc}; "
                + rebuild_hint(self.model_path, self.backend)
            ) from exc
        self._request = self._compiled.create_infer_request()
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        # One infer request is not re-entrant; requests from several threads take turns.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode texts into an (n, dim) float32 array of unit rows, in the input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = tokenize(self._tokenizer, texts, self.max_length)

        def forward(batch: Batch) -> np.ndarray:
            result = self._request.infer(
                {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            )
            return normalize_rows(np.asarray(result[0]))

        with self._lock:
            return encode_in_order(
                ids, self.config.batch_size, self._pad_id, self.dim, forward, show_progress=show_progress
            )
