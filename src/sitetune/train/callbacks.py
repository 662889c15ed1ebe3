"""Trainer callbacks: checkpoint completeness, the optional time cap, SIGTERM, the batch log, step timing."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from sitetune.train.samplers import BatchRecorder

#: Written into a checkpoint folder once every file of it is on disk; resume ignores folders without it.
COMPLETE_MARKER = "SITETUNE_COMPLETE"


class CompletionMarkerCallback(TrainerCallback):
    """Marks each checkpoint complete after the trainer has written all of it (``on_save`` runs last)."""

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            from sitetune.atomic import atomic_write_text

            atomic_write_text(folder / COMPLETE_MARKER, json.dumps({"step": state.global_step}) + "\n")


class StepTimerCallback(TrainerCallback):
    """Measures training wall time and seconds per step (for the summary and the time budget)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.first_step = 0
        self.last_step = 0
        self.step_times: list[float] = []
        self._last = 0.0
        self._cpu_start = 0.0
        self.cpu_seconds = 0.0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.start = self._last = time.monotonic()
        self._cpu_start = time.process_time()
        self.first_step = self.last_step = state.global_step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        self.step_times.append(now - self._last)
        self._last = now
        self.last_step = state.global_step
        # CPU seconds of this process (all its threads): unlike wall time, barely moved by other
        # processes sharing the cores, so it shows how contended a timing was.
        self.cpu_seconds = time.process_time() - self._cpu_start

    @property
    def elapsed(self) -> float:
        return (self._last - self.start) if self.start else 0.0

    @property
    def seconds_per_step(self) -> float:
        # The first step pays for warm-up (allocations, lazy init): leave it out when there are others.
        times = self.step_times[1:] if len(self.step_times) > 1 else self.step_times
        return sum(times) / len(times) if times else 0.0


class TimeBudgetCallback(TrainerCallback):
    """The optional ``max_minutes`` cap: stops training there and rescales a linear schedule to end there.

    Runs are planned in steps (:mod:`sitetune.train.steps`); this cap is for a user who needs the run
    to end by a deadline whatever the machine. After a few steps the callback projects how many steps fit
    in the budget and, if fewer than planned, rewrites the linear schedule's lambdas so the learning rate
    still decays to 0 at the last step that fits.
    """

    def __init__(
        self,
        max_minutes: float,
        timer: StepTimerCallback,
        warmup_ratio: float,
        linear: bool,
        clock: str = "wall",
    ) -> None:
        self.budget_s = max_minutes * 60.0
        self.timer = timer
        self.warmup_ratio = warmup_ratio
        self.linear = linear
        self.planned: int | None = None
        self.stopped_by_budget = False
        self.clock = clock

    def _elapsed(self) -> float:
        if self.clock == "cpu":
            import torch

            return self.timer.cpu_seconds / max(1, torch.get_num_threads())
        return self.timer.elapsed

    def _reschedule(self, scheduler: Any, planned: int) -> None:
        warm = max(1, math.ceil(self.warmup_ratio * planned)) if self.warmup_ratio > 0 else 0

        def linear(step: int) -> float:
            if step < warm:
                return float(step + 1) / float(warm + 1)
            return max(0.0, float(planned - step) / float(max(1, planned - warm)))

        scheduler.lr_lambdas = [linear for _ in scheduler.lr_lambdas]

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        elapsed = self._elapsed()
        done_here = state.global_step - self.timer.first_step
        if elapsed >= self.budget_s:
            self.stopped_by_budget = True
            control.should_training_stop = True
            return
        scheduler = kwargs.get("lr_scheduler")
        if self.linear and scheduler is not None and hasattr(scheduler, "lr_lambdas") and done_here >= 2:
            rate = elapsed / done_here
            fit = state.global_step + int((self.budget_s - elapsed) / max(rate, 1e-6))
            planned = max(state.global_step + 1, min(state.max_steps, fit))
            # Re-plan only on a real change: a jittery rate must not make the schedule wobble.
            if self.planned is None or abs(planned - self.planned) > max(2, 0.05 * self.planned):
                self.planned = planned
                self._reschedule(scheduler, planned)


class SigtermCallback(TrainerCallback):
    """Turns SIGTERM into "save a checkpoint at the end of this step and stop" (SIGKILL cannot be caught).

    The run then exits non-zero without writing the model; ``--resume`` continues from that checkpoint.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None

    def install(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave the default behaviour
            self._previous = None

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.received:
            control.should_save = True
            control.should_training_stop = True


class BatchLogCallback(TrainerCallback):
    """Appends, per optimizer step, the dataset rows that formed its batch to ``batches.jsonl``.

    The sampler records batches by (epoch, position); step ``g`` (1-based) of a run with ``n`` batches
    per epoch is batch ``(g-1) % n`` of epoch ``(g-1) // n``. Under DDP, rank 0 logs its own share.
    The log is fsynced per line, so a killed run leaves every completed step logged; steps after the
    last checkpoint are logged again by the resumed run, and readers keep the last entry per step.
    """

    def __init__(
        self, path: Path, recorder: BatchRecorder, batches_per_epoch: int, world_size: int = 1, rank: int = 0
    ) -> None:
        self.path = path
        self.recorder = recorder
        self.batches_per_epoch = max(1, batches_per_epoch)
        self.world_size = world_size
        self.rank = rank

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        index = state.global_step - 1
        epoch, position = divmod(index, self.batches_per_epoch)
        global_position = position * self.world_size + self.rank
        rows = self.recorder.get(epoch, global_position)
        entry = {"step": state.global_step, "epoch": epoch, "position": global_position, "rows": rows}
        import os

        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_batch_log(path: str | Path) -> dict[int, list[int]]:
    """Step -> rows from a batch log, the last entry of a step winning (a resumed run redoes steps)."""
    steps: dict[int, list[int]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            steps[int(entry["step"])] = list(entry["rows"] or [])
    return steps
