"""The training loop both recipes share: trainer set-up, checkpoints, resume, and the atomic model write.

A recipe module (:mod:`.card`, :mod:`.retrieval`) supplies a :class:`Plan` (model, loss, rows, batch
sampler, model info); :func:`run` trains it with ``SentenceTransformerTrainer`` and writes the model:

- the output folder is refused before any work if it exists (unless ``overwrite``);
- the run's length is planned up front from the pairs and the config (:mod:`.steps`), never from the
  clock; an optional ``max_minutes`` cap may stop it earlier, and the result then says it was cut short;
- checkpoints go to ``OUT.partial/`` every ``checkpoint_every`` steps, each marked complete once whole;
- ``resume`` continues from the newest complete checkpoint (same seed, same batches: same final step);
- SIGTERM saves a checkpoint and stops; the model is written only by a run that finishes;
- the model is built in a temporary folder beside ``OUT`` and renamed into place.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitetune.config import TrainConfig
from sitetune.errors import SitetuneError
from sitetune.modelinfo import ModelInfo
from sitetune.models import quiet_model_libraries, silence_trainer_log, use_bf16
from sitetune.train import checkpoints as ckpt
from sitetune.train.callbacks import (
    BatchLogCallback,
    CompletionMarkerCallback,
    SigtermCallback,
    StepTimerCallback,
    TimeBudgetCallback,
)
from sitetune.train.distributed import barrier, ddp_backend, dist_info
from sitetune.train.samplers import BatchRecorder
from sitetune.train.steps import StepPlan, plan_steps

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn

SamplerFactory = Callable[..., Any]
logger = logging.getLogger(__name__)


class TrainingInterrupted(SitetuneError):
    """SIGTERM stopped the run after saving a checkpoint; ``--resume`` continues it."""


@dataclass
class Plan:
    """What a recipe hands the training loop.

    Attributes:
        model: The model to fine-tune (already shaped: modules, max_seq_length).
        loss: The loss module bound to ``model``.
        dataset: Training rows, only the columns the loss reads.
        sampler: Builds the batch sampler: ``sampler(dataset, batch_size, drop_last, seed=, recorder=)``.
        batch_sampler_name: What the model card reports as the batch sampler.
        model_info: Written to the model's ``sitetune.json``.
    """

    model: SentenceTransformer
    loss: nn.Module
    dataset: Dataset
    sampler: SamplerFactory
    batch_sampler_name: str
    model_info: ModelInfo
    save_max_seq_length: int | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (also written to ``OUT/training/summary.json``).

    ``planned_steps`` and ``step_rule`` say how long the run was meant to be (a function of the pairs
    and the config); ``cut_short`` is ``None`` unless a ``max_minutes`` cap stopped it before that, and
    then says so in words.
    """

    out: str
    recipe: str
    steps: int
    resumed_from_step: int
    train_loss: float | None
    last_logged_loss: float | None
    seconds_per_step: float
    cpu_seconds_per_step: float
    train_seconds: float
    precision: str
    stopped_by: str
    pairs: int
    batch_size: int
    world_size: int
    planned_steps: int
    step_rule: str
    cut_short: str | None
    threads: int = 0


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def check_output(out: Path, *, overwrite: bool) -> None:
    """Refuse an existing output folder (or file) unless ``overwrite``: nothing is touched."""
    if out.exists() and not overwrite:
        what = "a model" if (out / "modules.json").is_file() else "something"
        raise SitetuneError(f"{out} already holds {what}: pass --overwrite to replace it")


def logging_cadence(config: TrainConfig, steps: int) -> int:
    """Steps between logged losses: ``logging_steps``, shrunk so a short run logs ``logging_at_least`` times."""
    if config.logging_at_least is None:
        return max(1, config.logging_steps)
    return max(1, min(config.logging_steps, steps // config.logging_at_least or 1))


def _make_trainer_class(sampler: SamplerFactory, recorder: BatchRecorder) -> type[Any]:
    from sentence_transformers import SentenceTransformerTrainer

    class SitetuneTrainer(SentenceTransformerTrainer):
        """Uses the recipe's recorded, resumable batch sampler for training."""

        sitetune_sampler: SamplerFactory | None = sampler
        sitetune_recorder: BatchRecorder | None = recorder

        def get_batch_sampler(
            self,
            dataset: Any,
            batch_size: int,
            drop_last: bool,
            valid_label_columns: list[str] | None = None,
            generator: Any = None,
            seed: int = 0,
        ) -> Any:
            if self.sitetune_sampler is None or dataset is not self.train_dataset:
                return super().get_batch_sampler(
                    dataset, batch_size, drop_last, valid_label_columns, generator, seed
                )
            return self.sitetune_sampler(
                dataset, batch_size, drop_last, seed=seed, recorder=self.sitetune_recorder
            )

    return SitetuneTrainer


def _training_args(config: TrainConfig, work: Path, plan: Plan, steps: StepPlan, *, progress: bool) -> Any:
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.training_args import BatchSamplers  # type: ignore[attr-defined]

    # Uncapped epochs are left to the trainer (it derives the same count: ceil(epochs x batches)), so a
    # model card lists max_steps -1 exactly where the published recipe does.
    max_steps = steps.steps if (config.max_steps is not None or steps.capped) else -1
    logging_steps = logging_cadence(config, steps.steps)
    return SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        max_steps=max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16(config.precision),
        use_cpu=not torch.cuda.is_available(),
        ddp_backend=ddp_backend(),
        save_strategy="steps",
        save_steps=config.checkpoint_every,
        save_total_limit=2,
        logging_steps=logging_steps,
        logging_first_step=config.logging_first_step,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_drop_last=False,
        batch_sampler=BatchSamplers(plan.batch_sampler_name),
        eval_strategy="no",
    )


def run(
    plan: Plan,
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    extra_files: dict[str, str] | None = None,
    log: Callable[[str], object] | None = None,
) -> TrainResult:
    """Train ``plan`` and write the model to ``out``.

    Args:
        plan: The recipe's model, loss, rows and sampler.
        config: Steps, optional time cap, precision, checkpoints.
        out: The model folder to create.
        overwrite: Replace an existing ``out`` (swapped in only once the new model is complete).
        resume: Continue from the newest complete checkpoint in ``OUT.partial/`` if there is one.
        progress: Show a progress bar.
        extra_files: Files (relative path -> text) to add to the model folder (e.g. pairs info).
        log: Called with the planned step count before training and with a warning if a time cap cut
            the run short (also logged at WARNING level).

    Returns:
        The run's figures.

    Raises:
        SitetuneError: ``out`` exists without ``overwrite``; an unfinished run exists without ``resume``
            or ``overwrite``.
        TrainingInterrupted: SIGTERM arrived; a checkpoint was saved.
    """
    out = Path(out)
    dist = dist_info()
    check_output(out, overwrite=overwrite)
    work = ckpt.work_dir_for(out)
    start_from: Path | None = None
    if resume:
        start_from = ckpt.latest_complete(work)
    elif ckpt.has_progress(work):
        if not overwrite:
            raise SitetuneError(
                f"{work} holds an unfinished run: pass --resume to continue it or --overwrite to start over"
            )
        if dist.is_main:
            shutil.rmtree(work)
    barrier()
    if dist.is_main:
        work.mkdir(parents=True, exist_ok=True)
    barrier()

    steps = plan_steps(len(plan.dataset), config, dist.world_size)
    if config.threads:
        from sitetune.encode.threads import set_torch_threads

        set_torch_threads(config.threads)
    if log is not None:
        log(f"training {steps.steps} steps ({steps.rule})")
    recorder = BatchRecorder()
    trainer_cls = _make_trainer_class(plan.sampler, recorder)
    args = _training_args(config, work, plan, steps, progress=progress)
    timer = StepTimerCallback()
    sigterm = SigtermCallback()
    callbacks: list[Any] = [CompletionMarkerCallback(), timer, sigterm]
    budget: TimeBudgetCallback | None = None
    if config.max_minutes is not None:
        budget = TimeBudgetCallback(
            config.max_minutes, timer, config.warmup_ratio, config.scheduler == "linear", config.budget_clock
        )
        callbacks.append(budget)
    per_epoch = plan.sampler(plan.dataset, config.batch_size, False, seed=config.seed, recorder=None)
    batches_per_epoch = -(-len(per_epoch) // dist.world_size)
    callbacks.append(
        BatchLogCallback(work / ckpt.BATCH_LOG, recorder, batches_per_epoch, dist.world_size, dist.rank)
    )
    with quiet_model_libraries():  # the model card's widget examples draw a bar of their own
        trainer = trainer_cls(
            model=plan.model, args=args, train_dataset=plan.dataset, loss=plan.loss, callbacks=callbacks
        )
    if not progress:
        silence_trainer_log(trainer)
    resumed_from = 0
    if start_from is not None:
        resumed_from = int(start_from.name.split("-")[-1])
    sigterm.install()
    t0 = time.monotonic()
    try:
        with quiet_model_libraries():  # checkpoints write shards under a bar of their own
            output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    finally:
        sigterm.uninstall()
    wall = time.monotonic() - t0
    if sigterm.received:
        raise TrainingInterrupted(
            f"stopped by SIGTERM at step {trainer.state.global_step}; checkpoint saved in {work}: "
            "rerun the same command with --resume to continue"
        )
    logged = loss_log(trainer.state.log_history)
    losses = [row["loss"] for row in logged]
    done = trainer.state.global_step
    cut_short: str | None = None
    if budget is not None and budget.stopped_by_budget and done < steps.steps:
        stopped_by = "time cap"
        cut_short = (
            f"the {config.max_minutes:g}-minute time cap stopped training at step {done} of {steps.steps} "
            f"planned ({steps.rule}): this model depends on how fast this machine ran; "
            "without a time cap the same command trains the same steps on any machine"
        )
        logger.warning(cut_short)
        if log is not None:
            log(f"warning: {cut_short}")
    elif config.max_steps is not None:
        stopped_by = "max steps"
    else:
        stopped_by = "step cap" if steps.capped else "epochs"
    result = TrainResult(
        out=str(out),
        recipe=config.recipe.value,
        steps=done,
        resumed_from_step=resumed_from,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        last_logged_loss=losses[-1] if losses else None,
        seconds_per_step=round(timer.seconds_per_step, 3),
        cpu_seconds_per_step=round(timer.cpu_seconds / max(1, timer.last_step - timer.first_step), 3),
        train_seconds=round(wall, 1),
        precision="bf16" if use_bf16(config.precision) else "fp32",
        stopped_by=stopped_by,
        pairs=len(plan.dataset),
        batch_size=config.batch_size,
        world_size=dist.world_size,
        planned_steps=steps.steps,
        step_rule=steps.rule,
        cut_short=cut_short,
        threads=_torch_threads(),
    )
    if dist.is_main:
        _write_model(plan, out, work, result, logged, overwrite=overwrite, extra_files=extra_files or {})
    barrier()
    return result


LOG_HISTORY = "log_history.json"


def loss_log(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The logged training losses of a trainer's ``log_history``: step, epoch and mean loss over the window."""
    return [
        {"step": int(h["step"]), "epoch": float(h["epoch"]), "loss": float(h["loss"])}
        for h in log_history
        if "loss" in h
    ]


def _write_model(
    plan: Plan,
    out: Path,
    work: Path,
    result: TrainResult,
    logged: list[dict[str, float]],
    *,
    overwrite: bool,
    extra_files: dict[str, str],
) -> None:
    from dataclasses import asdict

    from sitetune.atomic import atomic_dir

    if plan.save_max_seq_length is not None:
        plan.model.max_seq_length = plan.save_max_seq_length
    with atomic_dir(out, overwrite=overwrite) as tmp:
        with quiet_model_libraries():
            plan.model.save(str(tmp))
        plan.model_info.save(tmp)
        card = tmp / "README.md"
        base = plan.model_info.base_model
        if base is not None and card.is_file() and Path(base).is_absolute():
            # A local folder has no Hub page for the card's own "Base model" link: name it here instead.
            with card.open("a", encoding="utf-8") as fh:
                fh.write(f"\n## Base model\n\nFine-tuned from the model folder `{base}`.\n")
        if result.cut_short and card.is_file():
            with card.open("a", encoding="utf-8") as fh:
                fh.write(f"\n## Training cut short\n\n{result.cut_short}.\n")
        training = tmp / "training"
        training.mkdir()
        log = work / ckpt.BATCH_LOG
        if log.is_file():
            shutil.copyfile(log, training / ckpt.BATCH_LOG)
        (training / "summary.json").write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
        # The logged losses (step, epoch, mean loss over the window), as the model card's table shows them.
        (training / LOG_HISTORY).write_text(json.dumps(logged, indent=1) + "\n", encoding="utf-8")
        for name, text in extra_files.items():
            (training / name).write_text(text, encoding="utf-8")
        # mkdtemp makes the folder private (0700); a model folder is meant to be shared and served.
        import os

        for root, _dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
    shutil.rmtree(work, ignore_errors=True)
