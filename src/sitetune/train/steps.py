"""How many optimizer steps a run takes: a pure function of the pairs and the config, never of the clock.

A wall-time budget makes the model depend on how busy the machine was (the same command gave 64 steps on
one host and 35 on another). The step count is planned up front instead:

- ``--max-steps N`` given: N steps;
- otherwise ``ceil(epochs x batches per epoch)``, at most ``step_cap``: a small site gets its passes over
  the pairs, a large one a bounded run (the retrieval preset's cap: 80 steps, see its comment in
  :mod:`sitetune.config` for what that costs).

``max_minutes`` stays an optional cap on top; when it stops a run before its planned step, the result
says so (see :func:`sitetune.train.core.run`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sitetune.config import TrainConfig
from sitetune.errors import SitetuneError


@dataclass(frozen=True)
class StepPlan:
    """The planned length of a run.

    Attributes:
        steps: Optimizer steps the run takes (unless a time cap or SIGTERM stops it first).
        batches_per_epoch: Batches one process sees per pass over the pairs.
        rule: How ``steps`` was derived, in words (for logs and the model's training summary).
        capped: Whether ``step_cap`` bound the epochs' steps.
    """

    steps: int
    batches_per_epoch: int
    rule: str
    capped: bool = False


def plan_steps(rows: int, config: TrainConfig, world_size: int = 1) -> StepPlan:
    """Plan a run over ``rows`` training pairs.

    Args:
        rows: Training pairs (dataset rows).
        config: The training config (batch size, epochs, ``max_steps``, ``step_cap``).
        world_size: Processes sharing each epoch's batches (torchrun); 1 for a plain run.

    Returns:
        The step plan; the same inputs always give the same plan.

    Raises:
        SitetuneError: No rows, or a non-positive batch size, epoch count or step count.
    """
    if rows < 1:
        raise SitetuneError("there are no training pairs: the corpus gave none")
    if config.batch_size < 1:
        raise SitetuneError(f"the batch size must be at least 1, not {config.batch_size}")
    batches = math.ceil(rows / config.batch_size)  # the samplers keep the last, short batch
    per_process = math.ceil(batches / max(1, world_size))
    if config.max_steps is not None:
        if config.max_steps < 1:
            raise SitetuneError(f"--max-steps must be at least 1, not {config.max_steps}")
        return StepPlan(config.max_steps, per_process, f"max_steps {config.max_steps}")
    if config.epochs <= 0:
        raise SitetuneError(f"--epochs must be above 0, not {config.epochs:g}")
    from_epochs = max(1, math.ceil(config.epochs * per_process))
    rule = f"{config.epochs:g} epochs x {per_process} batches of {config.batch_size}"
    if config.step_cap is not None and from_epochs > config.step_cap:
        return StepPlan(config.step_cap, per_process, f"{rule}, capped at {config.step_cap} steps", True)
    return StepPlan(from_epochs, per_process, rule)
