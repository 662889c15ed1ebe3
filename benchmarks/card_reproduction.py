"""The card recipe against the published model's training log: step, epoch, published loss, ours, ratio.

The published CBS model (all-MiniLM-L6-v2 + CosineSimilarityLoss on 13,697 pairs, batch 16, 5 epochs)
logs its training loss every 500 steps. This script reads a card-recipe run of ours, finished or still
going (the newest checkpoint's ``trainer_state.json``), and prints the two logs side by side.

Optional parts:

- ``--precision-window STEPS``: train the same pairs for STEPS steps in fp32 and in bf16 (same seed, same
  batches, the schedule of a STEPS-step run) and compare the windows' mean losses: how much the precision
  alone moves the logged loss.
- ``--evaluate``: nDCG@10 and answers@1 of the reproduced checkpoint beside the base model (and a retrieval
  model with ``--retrieval-model``) on packaged question sets, through ``sitetune evaluate``.

Usage:
    sitetune pairs ../shared/data/cbs_graduate_programs.csv --recipe card --out runs/card-pairs
    sitetune train --pairs runs/card-pairs --recipe card --out runs/card-repro --checkpoint-every 100 &
    python benchmarks/card_reproduction.py --run runs/card-repro --pairs runs/card-pairs \\
        --precision-window 30 --evaluate --corpus ../shared/data/cbs_graduate_programs.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from machine import describe_machine, run_sitetune, write_fragment

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "card_reproduction.md"

#: The published card's training log: step -> mean training loss over the 500 steps before it.
PUBLISHED_LOSS = {500: 0.0047, 1000: 0.0021, 1500: 0.0012, 2000: 0.0012, 2500: 0.0009, 3000: 0.0007,
                  3500: 0.0006, 4000: 0.0006}
#: Steps per epoch of the published run: ceil(13,697 pairs / 16); its card gives epoch 0.5834 at step 500.
PUBLISHED_STEPS_PER_EPOCH = 857


def published_epoch(step: int) -> float:
    """The published run's epoch fraction at ``step`` (the trainer logs step / steps per epoch)."""
    return step / PUBLISHED_STEPS_PER_EPOCH


def read_run(run: Path) -> dict[str, Any]:
    """The logged losses and precision of a card run: its model folder, or its newest checkpoint if unfinished.

    Returns:
        ``{"source", "steps", "precision", "log": [{"step", "epoch", "loss"}]}``.
    """
    history = run / "training" / "log_history.json"
    if history.is_file():
        summary = json.loads((run / "training" / "summary.json").read_text())
        return {"source": str(run), "steps": summary["steps"], "precision": summary["precision"],
                "log": json.loads(history.read_text())}
    checkpoints = sorted((run.parent / f"{run.name}.partial").glob("checkpoint-*"),
                         key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    checkpoints = [c for c in checkpoints if (c / "trainer_state.json").is_file()]
    if not checkpoints:
        sys.exit(f"{run}: neither a finished model (training/log_history.json) nor a checkpoint in {run}.partial")
    newest = checkpoints[-1]
    state = json.loads((newest / "trainer_state.json").read_text())
    log = [{"step": int(h["step"]), "epoch": float(h["epoch"]), "loss": float(h["loss"])}
           for h in state["log_history"] if "loss" in h]
    return {"source": str(newest), "steps": int(state["global_step"]), "precision": _checkpoint_precision(newest),
            "log": log}


def _checkpoint_precision(checkpoint: Path) -> str:
    """bf16 or fp32, from the checkpoint's saved training arguments."""
    import torch

    args = torch.load(checkpoint / "training_args.bin", weights_only=False)
    return "bf16" if getattr(args, "bf16", False) else "fp32"


def comparison(log: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One row per published step that our log reached: epochs and losses side by side."""
    ours = {row["step"]: row for row in log}
    rows = []
    for step, published in PUBLISHED_LOSS.items():
        if step not in ours:
            continue
        row = ours[step]
        rows.append({
            "step": step,
            "published_epoch": round(published_epoch(step), 4),
            "epoch": round(row["epoch"], 4),
            "published_loss": published,
            "loss": row["loss"],
            "ratio": row["loss"] / published,
        })
    return rows


def precision_window(pairs: Path, steps: int, workdir: Path) -> list[dict[str, Any]]:
    """Train ``steps`` steps in fp32 and in bf16 from the same seed; the logged window losses of both."""
    every = max(1, steps // 3)
    logs: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        out = workdir / f"window-{precision}"
        summary = run_sitetune("train", "--pairs", str(pairs), "--recipe", "card", "--out", str(out), "--overwrite",
                           "--max-steps", str(steps), "--logging-steps", str(every), "--precision", precision,
                           "--no-progress")
        seconds[precision] = summary["seconds_per_step"]
        logs[precision] = json.loads((out / "training" / "log_history.json").read_text())
    rows = []
    for fp32, bf16 in zip(logs["fp32"], logs["bf16"], strict=True):
        rows.append({"step": fp32["step"], "fp32": fp32["loss"], "bf16": bf16["loss"],
                     "ratio": bf16["loss"] / fp32["loss"] if fp32["loss"] else float("nan"),
                     "fp32_s_per_step": seconds["fp32"], "bf16_s_per_step": seconds["bf16"]})
    return rows


def checkpoint_model(source: Path, dest: Path) -> Path:
    """A servable model folder from a checkpoint: its model files plus the card recipe's model info."""
    from sitetune.modelinfo import CARD_MODEL_INFO

    if (source / "sitetune.json").is_file():
        return source
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*",
                                                                "training_args.bin", "trainer_state.json",
                                                                "sitetune_*"))
    CARD_MODEL_INFO.save(dest)
    return dest


def evaluate(corpus: Path, models: dict[str, Path | str], query_sets: list[str], out: Path) -> dict[str, Any]:
    """nDCG@10 and answers@1 of each model's dense ranking and served search, through ``sitetune evaluate``."""
    args = ["evaluate", "--corpus", str(corpus), "--out", str(out), "--no-answers"]
    for model in models.values():
        args += ["--model", str(model)]
    for name in query_sets:
        args += ["--queries", name]
    return run_sitetune(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="The card run's model folder (--out of train)")
    parser.add_argument("--pairs", type=Path, help="The card pairs (for --precision-window)")
    parser.add_argument("--precision-window", type=int, default=0, help="Steps of the fp32/bf16 comparison")
    parser.add_argument("--evaluate", action="store_true", help="Score the reproduced checkpoint")
    parser.add_argument("--corpus", type=Path, help="Corpus for --evaluate")
    parser.add_argument("--retrieval-model", type=Path, help="A retrieval-recipe model to score beside it")
    parser.add_argument("--queries", default="cbs,cbs-v2", help="Packaged question sets for --evaluate")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "card-reproduction")
    parser.add_argument("--note", action="append", default=[], help="A line for the fragment (e.g. resumes)")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    machine = describe_machine()
    args.workdir.mkdir(parents=True, exist_ok=True)

    run = read_run(args.run)
    rows = comparison(run["log"])
    window = precision_window(args.pairs, args.precision_window, args.workdir) if args.precision_window else []
    scores: dict[str, Any] = {}
    if args.evaluate:
        if args.corpus is None:
            sys.exit("--evaluate needs --corpus")
        source = Path(run["source"])
        card = checkpoint_model(source, args.workdir / f"card-step{run['steps']}")
        models: dict[str, Path | str] = {"base": "base", "card": card}
        if args.retrieval_model:
            models["retrieval"] = args.retrieval_model
        scores = evaluate(args.corpus, models, args.queries.split(","), args.workdir / "eval")

    figures = {"run": run["source"], "steps": run["steps"], "precision": run["precision"], "rows": rows,
               "precision_window": window, "evaluation": scores}
    if args.json:
        print(json.dumps(figures, indent=2))
    shown = [a for a, before in zip(sys.argv[1:], ["", *sys.argv[1:]], strict=True) if before != "--note"]
    command = "python benchmarks/card_reproduction.py " + " ".join(a if a != "--note" else "--note …" for a in shown)
    lines = [
        "## Card recipe vs the published training log",
        "",
        f"Command: `{command}`",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine}",
        f"- Run: `{run['source']}`, {run['steps']} steps of {5 * PUBLISHED_STEPS_PER_EPOCH} planned, "
        f"{run['precision']}; published epoch = step / {PUBLISHED_STEPS_PER_EPOCH} (its card: 0.5834 at step 500)",
        "",
        "| step | published epoch | our epoch | published loss | our loss | ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['step']} | {r['published_epoch']:.4f} | {r['epoch']:.4f} | {r['published_loss']:.4f} | "
              f"{r['loss']:.4f} | {r['ratio']:.2f} |" for r in rows]
    if args.note:
        lines += ["", *args.note]
    if window:
        lines += ["", f"### Precision: the same {args.precision_window} steps in fp32 and bf16", "",
                  "| step | fp32 loss | bf16 loss | bf16 / fp32 |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['step']} | {r['fp32']:.4f} | {r['bf16']:.4f} | {r['ratio']:.2f} |" for r in window]
        lines += ["", f"s/step in this run: fp32 {window[0]['fp32_s_per_step']:.2f}, "
                      f"bf16 {window[0]['bf16_s_per_step']:.2f}."]
    if scores:
        lines += ["", f"### Retrieval quality of the step-{run['steps']} checkpoint", "",
                  "| row | " + " | ".join(f"{q} nDCG@10 | {q} answers@1" for q in args.queries.split(",")) + " |",
                  "|---|" + "---:|---:|" * len(args.queries.split(","))]
        for label, per_set in scores.items():
            if not isinstance(per_set, dict):
                continue
            cells = []
            for q in args.queries.split(","):
                metrics = per_set.get(q, {}) if isinstance(per_set.get(q), dict) else {}
                ndcg, first = metrics.get("ndcg@10"), metrics.get("answers@1")
                cells.append(f"{ndcg:.3f}" if isinstance(ndcg, float) else "")
                cells.append(f"{first:.1%}" if isinstance(first, float) else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_fragment(RESULT, lines)


if __name__ == "__main__":
    main()
