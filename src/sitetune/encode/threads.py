"""Thread counts chosen explicitly: one compute thread per physical core the process may use.

Hyper-threads share a core's matrix units, so a second thread per core only adds contention; and
letting each library pick its own default oversubscribes a small machine when torch, OpenVINO and the
tokenizer all spawn pools.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (at least 1).

    Reads ``/proc/cpuinfo`` (``physical id`` + ``core id`` pairs) restricted to the process's affinity
    mask; where that is unavailable it falls back to the number of usable logical CPUs.
    """
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return max(1, len(allowed))
    cores: set[tuple[str, str]] = set()
    for block in text.split("\n\n"):
        pairs = (line.partition(":") for line in block.splitlines())
        fields = {key.strip(): value.strip() for key, _, value in pairs}
        if "processor" not in fields or int(fields["processor"]) not in allowed:
            continue
        cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
    return max(1, len(cores) or len(allowed))


def choose_threads(requested: int = 0) -> int:
    """The compute threads to use: ``requested`` when positive, else one per physical core."""
    return requested if requested > 0 else physical_cores()


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads (process-wide) if they differ; inter-op stays torch's own."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
