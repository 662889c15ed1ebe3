"""Encoders: texts in, L2-normalised float32 vectors out.

Every stage that embeds (index, search, evaluation, serve) goes through :func:`load_encoder`, so the
backend is one option (``--backend``). Backends (measured in docs/encode.md):

- ``auto`` (default): ``openvino`` where the package is installed (exported on first use), else ``torch``.
- ``torch``: the model's own modules, length-sorted batches, bf16 weights where the CPU has bf16 units.
- ``openvino``: OpenVINO IR of the same graph, bf16 (or fp32) at run time.
- ``openvino-int8``: NNCF static int8, calibrated on the site's sections (``sitetune export --corpus``).
- ``static``: a token table distilled from the model (Model2Vec recipe) for very large corpora.
- ``sentence-transformers``: plain fp32 ``SentenceTransformer.encode``, the quality reference.
"""

from __future__ import annotations

from sitetune.encode.base import BACKENDS, Encoder, TorchEncoder, export_model, load_encoder
from sitetune.encode.export import ExportError

__all__ = ["BACKENDS", "Encoder", "ExportError", "TorchEncoder", "export_model", "load_encoder"]
