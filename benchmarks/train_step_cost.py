"""What one retrieval-recipe training step costs under different loss set-ups, measured interleaved.

One process loads the model once and takes the first ``--steps`` batches the trainer would train on
(same pairs, seed and page-aware sampler). For every batch, each variant runs the step's work, the loss's
forward and backward under bf16 autocast as the trainer runs it, in an order that rotates batch by batch,
so a busy neighbour on a shared machine slows all variants alike: compare the ratios (per batch, against
the old default), not the absolute seconds. The optimizer step and data collation are the same for every
variant and are left out. For each call it also records the peak resident memory above the memory
before the call (``VmHWM`` reset through ``/proc/self/clear_refs``). The tokens each variant embeds per
step (padding included) are counted from the batches themselves: a noise-free account of the work.

With ``--quality-steps N`` it also trains the old and the new default loss for N steps each on the whole
corpus and scores both with ``sitetune evaluate`` on the packaged question set
(``benchmarks/results/train_step_quality.md``).

    python benchmarks/train_step_cost.py --corpus ../shared/data/cbs_graduate_programs.csv
    python benchmarks/train_step_cost.py --corpus ../shared/data/cbs_graduate_programs.csv \
        --skip-cost --quality-steps 30
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: name -> (loss, mini-batch size, bf16). The first is the baseline: the recipe before this benchmark.
VARIANTS: dict[str, tuple[str, int, bool]] = {
    "cached_mnrl, mini-batch 32 (before)": ("cached_mnrl", 32, True),
    "cached_mnrl, mini-batch 8": ("cached_mnrl", 8, True),
    "mnrl (whole batch, one forward)": ("mnrl", 64, True),
    "sorted_mnrl, mini-batch 16 (new default)": ("sorted_mnrl", 16, True),
    "sorted_mnrl, mini-batch 8": ("sorted_mnrl", 8, True),
}
FP32_VARIANT = "sorted_mnrl, mini-batch 16, fp32"


def make_loss(kind: str, model: Any, mini_batch_size: int) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from sitetune.train.losses import LengthSortedMNRLoss

    if kind == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=mini_batch_size)
    if kind == "mnrl":
        return MultipleNegativesRankingLoss(model, scale=20.0)
    return LengthSortedMNRLoss(model, scale=20.0, mini_batch_size=mini_batch_size)


def padded_tokens(lengths: list[int], kind: str, mini_batch_size: int) -> int:
    """Tokens a column costs: cached cuts mini-batches in row order, sorted sorts first, mnrl pads to the max."""
    if kind == "mnrl":
        return len(lengths) * max(lengths)
    values = sorted(lengths) if kind == "sorted_mnrl" else list(lengths)
    return sum(
        len(values[i : i + mini_batch_size]) * max(values[i : i + mini_batch_size])
        for i in range(0, len(values), mini_batch_size)
    )


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Free what can be freed, reset the peak-RSS mark, and return the current RSS in KiB."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def cost_part(args: argparse.Namespace, pairs_dir: Path, header: list[str]) -> None:
    import torch

    from sitetune.config import RETRIEVAL_RECIPE
    from sitetune.pairs import load_pairs
    from sitetune.train.retrieval import retrieval_plan

    variants = dict(VARIANTS)
    if args.fp32:
        variants[FP32_VARIANT] = ("sorted_mnrl", 16, False)
    names = list(variants)
    plan = retrieval_plan(load_pairs(pairs_dir), RETRIEVAL_RECIPE)
    model, data = plan.model, plan.dataset
    model.train()
    columns = [c for c in ("anchor", "positive", "negative") if c in data.column_names]
    batches = plan.sampler(data, RETRIEVAL_RECIPE.batch_size, False, seed=RETRIEVAL_RECIPE.seed).plan(0)
    batches = batches[: args.steps]
    losses = {name: make_loss(kind, model, mbs) for name, (kind, mbs, _bf16) in variants.items()}
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    peak: dict[str, list[float]] = {n: [] for n in names}
    tokens: dict[str, list[int]] = {n: [] for n in names}
    unpadded: list[int] = []
    started = time.time()
    loads = [os.getloadavg()[0]]
    for step, rows in enumerate(batches):
        features = [model.tokenize([data[c][i] for i in rows]) for c in columns]
        lengths = [[int(x) for x in f["attention_mask"].sum(dim=1)] for f in features]
        unpadded.append(sum(sum(col) for col in lengths))
        labels = torch.zeros(len(rows))
        order = names[step % len(names):] + names[: step % len(names)]
        for name in order:
            kind, mbs, bf16 = variants[name]
            tokens[name].append(sum(padded_tokens(col, kind, mbs) for col in lengths))
            model.zero_grad(set_to_none=True)
            before = _reset_peak()
            t0, c0 = time.perf_counter(), time.process_time()
            # The trainer autocasts the model's forward (accelerate wraps it), so the cached loss's
            # replay inside backward is autocast too: both run inside the context here.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = losses[name]([dict(f) for f in features], labels)
                loss.backward()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            peak[name].append((_status_kib("VmHWM") - before) / 1024)
        loads.append(os.getloadavg()[0])
        print(f"batch {step + 1}/{len(batches)}: " + ", ".join(f"{n}: {wall[n][-1]:.1f}s" for n in names), flush=True)
    base = names[0]
    lines = [
        "## Training step cost: loss set-ups of the retrieval recipe, interleaved",
        "",
        *header,
        f"- {len(batches)} batches of {RETRIEVAL_RECIPE.batch_size} "
        f"(max_seq_length {RETRIEVAL_RECIPE.max_seq_length}), "
        f"each run by every variant in a rotating order; forward + backward of the loss, as the trainer runs it; "
        f"whole benchmark {(time.time() - started) / 60:.0f} min; 1-minute load average during it "
        f"{min(loads):.1f} to {max(loads):.1f}",
        "",
        "| variant | wall s/step (median) | speed-up (median of per-batch ratios) | CPU s/step (median) | "
        "tokens embedded per step | forward passes | extra peak RSS MiB (max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        kind = variants[name][0]
        ratios = [b / w for b, w in zip(wall[base], wall[name], strict=True)]
        lines.append(
            f"| {name} | {statistics.median(wall[name]):.2f} | {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(cpu[name]):.2f} | "
            f"{round(statistics.mean(tokens[name])):,} | {2 if kind == 'cached_mnrl' else 1} | "
            f"{max(peak[name]):,.0f} |"
        )
    lines += [
        f"| (no padding at all) | | | | {round(statistics.mean(unpadded)):,} | | |",
        "",
        "Speed-up: per batch, the baseline's seconds over the variant's, then the median (range in brackets).",
        "Tokens embedded per step count padding (a forward pass costs its rows times its longest row): cached",
        "MNRL cuts each column in the batch's row order (the sampler sorts rows by section length) and embeds",
        "everything twice (once without gradients to cache them, once with); mnrl pads every row to the batch's",
        "longest; sorted_mnrl sorts each column by its own lengths and embeds once. Extra peak RSS is the memory",
        "a step needs above what is held before it: activations kept for backward.",
        "",
    ]
    (RESULTS / "train_step_cost.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def sh(*args: str) -> dict[str, Any]:
    """Run a sitetune command with --json and return its JSON."""
    cmd = [sys.executable, "-m", "sitetune.cli.main", *args, "--json"]
    print("$", " ".join(cmd[2:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {proc.stderr[-3000:]}")
    out = proc.stdout
    start = 0 if out.startswith("{\n") else out.rindex("\n{\n") + 1
    return json.loads(out[start:])  # type: ignore[no-any-return]


def quality_part(args: argparse.Namespace, pairs_dir: Path, header: list[str]) -> None:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    trained: dict[str, dict[str, Any]] = {}
    for key, (loss, mbs) in {"before": ("cached_mnrl", 32), "after": ("sorted_mnrl", 16)}.items():
        model = work / f"model-{key}"
        trained[key] = sh(
            "train", "--pairs", str(pairs_dir), "--out", str(model), "--overwrite", "--no-progress",
            "--max-steps", str(args.quality_steps), "--loss", loss, "--mini-batch-size", str(mbs),
        )
    report = sh(
        "evaluate", "--corpus", args.corpus, "--model", "base", "--model", str(work / "model-before"),
        "--model", str(work / "model-after"), "--queries", "cbs", "--no-answers", "--out", str(work / "eval"),
    )
    (work / "evaluate.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    scores = dense_ndcg(report)
    lines = [
        "## Training step cost: does the cheaper loss train as well?",
        "",
        *header,
        f"- Both models: the retrieval recipe for {args.quality_steps} steps on every page (same pairs, seed and "
        "batches); only the loss set-up differs. Scored alone (dense retrieval) on the packaged question set "
        f"with `sitetune evaluate --queries cbs` (report: `{work / 'eval'}`).",
        "",
        "| model | loss | steps | wall s | s/step | nDCG@10 (question set) |",
        "|---|---|---:|---:|---:|---:|",
        f"| base | | | | | {scores.get('base', float('nan')):.3f} |",
    ]
    for key, label in (("before", "cached_mnrl, mini-batch 32"), ("after", "sorted_mnrl, mini-batch 16")):
        t = trained[key]
        lines.append(
            f"| {key} | {label} | {t['steps']} | {t['train_seconds']:.0f} | {t['seconds_per_step']:.2f} | "
            f"{scores.get(f'model-{key}', float('nan')):.3f} |"
        )
    lines.append("")
    (RESULTS / "train_step_quality.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def dense_ndcg(report: dict[str, Any]) -> dict[str, float]:
    """Model label -> nDCG@10 of the model alone on the question set, from ``sitetune evaluate --json``."""
    found: dict[str, float] = {}
    for label, sets in report.items():
        for query_set, metrics in sets.items():
            if "question" in query_set or query_set.startswith("cbs"):
                found[label] = float(metrics["ndcg@10"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/cbs_graduate_programs.csv")
    parser.add_argument("--steps", type=int, default=6, help="Batches to time (each by every variant)")
    parser.add_argument("--fp32", action="store_true", help="Also time the sorted loss without bf16 autocast")
    parser.add_argument("--skip-cost", action="store_true", help="Skip the step timing")
    parser.add_argument("--quality-steps", type=int, default=0, help="Train both losses this long and evaluate")
    parser.add_argument("--workdir", default="runs/bench-step-cost")
    args = parser.parse_args()

    from sitetune.config import RETRIEVAL_PAIRS
    from sitetune.corpus import Corpus
    from sitetune.pairs import build_pairs, save_pairs

    pairs_dir = Path(args.workdir) / "pairs"
    save_pairs(build_pairs(Corpus.load(args.corpus).records, RETRIEVAL_PAIRS), pairs_dir, overwrite=True)
    command = "python benchmarks/train_step_cost.py " + " ".join(sys.argv[1:])
    header = [
        f"Command: `{command}`",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {describe_machine()}",
        f"- Corpus: `{args.corpus}`, retrieval pairs of every page",
    ]
    if not args.skip_cost:
        cost_part(args, pairs_dir, header)
    if args.quality_steps > 0:
        quality_part(args, pairs_dir, header)


if __name__ == "__main__":
    main()
