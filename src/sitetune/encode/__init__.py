"""Encoders: texts in, L2-normalised float32 vectors out.

Every stage that embeds (index, search, evaluation, serve) goes through :func:`load_encoder`, so the
backend is one option (``--backend``). Backends:

- ``torch``: sentence-transformers on torch, bf16 autocast where the CPU supports it.
"""

from __future__ import annotations

from sitetune.encode.base import Encoder, load_encoder

__all__ = ["Encoder", "load_encoder"]
