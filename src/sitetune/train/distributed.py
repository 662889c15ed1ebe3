"""torchrun / DDP: which process this is, and the backend to ask for.

``torchrun --nproc_per_node N -m sitetune.cli.main train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; transformers' TrainingArguments then starts the process group. On the CPU that must be
gloo (NCCL needs GPUs). Each process builds the same pairs (seeded) and trains on its share of every
epoch's batches; only rank 0 writes checkpoints' shared files, the batch log and the final model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Read torchrun's environment; a plain run is rank 0 of 1."""
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )


def ddp_backend() -> str | None:
    """gloo on the CPU, NCCL (transformers' default) on GPUs; ``None`` for a single process."""
    if dist_info().world_size <= 1:
        return None
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
