"""The work folder of a run: checkpoints, the batch log, and which checkpoint a resume may trust.

``MODEL.partial/`` sits beside the output folder while a run is unfinished and is removed once the model
is written. Checkpoints without :data:`COMPLETE_MARKER` were cut off mid-write and are never used.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sitetune.train.callbacks import COMPLETE_MARKER

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
BATCH_LOG = "batches.jsonl"


def work_dir_for(out: Path) -> Path:
    """Where a run writing ``out`` keeps its checkpoints."""
    return out.parent / f"{out.name}.partial"


def checkpoints(work: Path) -> list[tuple[int, Path, bool]]:
    """(step, folder, complete) for every checkpoint folder, by step."""
    if not work.is_dir():
        return []
    found = []
    for child in work.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child, (child / COMPLETE_MARKER).is_file()))
    return sorted(found)


def latest_complete(work: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones newer than it are deleted (never trained on)."""
    best: Path | None = None
    for _step, folder, complete in checkpoints(work):
        if complete:
            best = folder
    for _step, folder, complete in checkpoints(work):
        if not complete:
            shutil.rmtree(folder, ignore_errors=True)
    return best


def has_progress(work: Path) -> bool:
    """Whether ``work`` holds anything a new run would destroy."""
    return work.is_dir() and any(work.iterdir())
