"""What ``sitetune refresh`` leaves in the store for a running server to report: ``refresh.json``.

Layout, beside ``CURRENT`` (a Milvus store's in its sidecar folder)::

    STORE/
      refresh.json            the last attempt (outcome, error, seconds, counts), the last success, totals,
                              and how far the corpus has moved from the model's training corpus
      refresh-baseline.json   the chunk ids the model is taken to be trained on (see sitetune.refresh.drift)
      .refresh.lock           held by a running refresh, so two never run at once

Every write replaces the file atomically; a reader that meets a missing or broken file gets ``None``, never
an exception (``/healthz`` must answer whatever a refresh left).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sitetune.atomic import atomic_write_text
from sitetune.index.store import exclusive_flock

STATE_FILE = "refresh.json"
BASELINE_FILE = "refresh-baseline.json"
LOCK_FILE = ".refresh.lock"
STATE_FORMAT = 1


def state_dir(store: str | Path) -> Path:
    """The folder holding ``refresh.json`` for ``store``: the store itself, or a Milvus store's sidecar."""
    from sitetune.index.milvus import MilvusStore, is_milvus_uri

    uri = str(store)
    return MilvusStore(uri).sidecar.root if is_milvus_uri(uri) else Path(uri)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or ``None`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_state(folder: Path) -> dict[str, Any] | None:
    """The store's ``refresh.json`` (``None``: no refresh has written one, or it is unreadable)."""
    return read_json(Path(folder) / STATE_FILE)


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / STATE_FILE, json.dumps(state, ensure_ascii=False, indent=2) + "\n")


def mark_running(folder: Path, started: str) -> int:
    """Record that a refresh (this process) started at ``started``; returns its run number."""
    state = read_state(folder) or {}
    run = int(state.get("runs", 0)) + 1
    state.update(format=STATE_FORMAT, running={"run": run, "pid": os.getpid(), "started": started})
    _write_state(folder, state)
    return run


def record_attempt(folder: Path, attempt: dict[str, Any], drift: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a finished attempt (``attempt["outcome"]`` is ``"success"`` or ``"failure"``); returns the state.

    Args:
        folder: :func:`state_dir` of the store.
        attempt: run, started, finished, seconds, outcome, error, stage and the run's counts.
        drift: The corpus's distance from the model's training corpus, when it was measured.
    """
    state = read_state(folder) or {}
    succeeded = attempt.get("outcome") == "success"
    state["format"] = STATE_FORMAT
    state["runs"] = max(int(state.get("runs", 0)), int(attempt.get("run", 0)))
    key = "successes" if succeeded else "failures"
    state[key] = int(state.get(key, 0)) + 1
    state.setdefault("successes", 0)
    state.setdefault("failures", 0)
    state["running"] = None
    state["last"] = attempt
    if succeeded:
        state["last_success"] = attempt
    if drift is not None:
        state["drift"] = drift
    _write_state(folder, state)
    return state


@contextlib.contextmanager
def refresh_lock(folder: Path) -> Iterator[None]:
    """Hold the store's refresh lock for the block (released by the kernel if the process dies).

    Raises:
        StoreError: Another refresh holds it.
    """
    with exclusive_flock(folder / LOCK_FILE, f"another refresh of {folder} is running"):
        yield


def read_baseline(folder: Path) -> dict[str, Any] | None:
    """``refresh-baseline.json``: ``model_fingerprint``, ``generation``, ``chunks`` (ids); ``None`` if absent."""
    data = read_json(Path(folder) / BASELINE_FILE)
    if data is None or not isinstance(data.get("chunks"), list):
        return None
    return data


def write_baseline(folder: Path, fingerprint: str, chunk_ids: list[str], *, generation: int | None,
                   source: str) -> None:
    """Record ``chunk_ids`` as the corpus the model with ``fingerprint`` is taken to be trained on."""
    data = {"model_fingerprint": fingerprint, "generation": generation, "source": source,
            "chunks": sorted(set(chunk_ids))}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / BASELINE_FILE, json.dumps(data) + "\n")


def generation_chunk_ids(folder: Path, generation: int) -> list[str]:
    """The chunk ids of generation ``generation`` of the embedded store (or sidecar) at ``folder``."""
    from sitetune.index.store import CHUNKS_FILE, EmbeddedStore

    ids = []
    with open(EmbeddedStore(folder).gen_dir(generation) / CHUNKS_FILE, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                ids.append(str(json.loads(line)["chunk_id"]))
    return ids
