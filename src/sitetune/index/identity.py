"""Identities a store records: which model embedded it, which corpus it holds, what each chunk looked like.

A store refuses a query encoded by another model, and an incremental re-index reuses a vector only when
the same model embedded the same formatted document text; both checks go through these hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sitetune.corpus import Chunk

# Files whose bytes decide what vectors a model folder produces, in the order they are hashed.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")
_CONFIG_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "tokenizer.json",
    "sitetune.json",
)
_cache: dict[tuple[str, int, int], str] = {}


def model_fingerprint(model_path: str | Path) -> str:
    """sha256 over a model folder's weights and configs (first weight file found, every config present).

    Cached per (folder, weights mtime, size): hashing 90 MB of weights costs ~0.1 s, once per process.

    Args:
        model_path: A sentence-transformers model folder.

    Returns:
        Hex digest; equal for byte-identical copies of a model, different after any fine-tuning step.
    """
    root = Path(model_path)
    weights = next((root / name for name in _WEIGHT_FILES if (root / name).is_file()), None)
    stat = weights.stat() if weights is not None else None
    key = (str(root.resolve()), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    if key in _cache:
        return _cache[key]
    digest = hashlib.sha256()
    for path in ([weights] if weights is not None else []) + [root / name for name in _CONFIG_FILES]:
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    _cache[key] = digest.hexdigest()
    return _cache[key]


def corpus_hash_line(chunk: Chunk) -> bytes:
    """One chunk's contribution to :func:`corpus_hash` (a streaming build feeds these to its own digest)."""
    line = json.dumps([chunk.chunk_id, chunk.text, [asdict(o) for o in chunk.occurrences]], ensure_ascii=False)
    return line.encode("utf-8") + b"\n"


def corpus_hash(chunks: Sequence[Chunk]) -> str:
    """sha256 over the chunks (ids, texts and occurrences) in order."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(corpus_hash_line(chunk))
    return digest.hexdigest()


def doc_hash(document: str) -> str:
    """Hash of one formatted document text: a vector is reusable when this and the model are unchanged."""
    return hashlib.sha1(document.encode("utf-8")).hexdigest()[:16]
