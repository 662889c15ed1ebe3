"""What one retrieval-recipe training step costs under different loss set-ups, measured interleaved.

One process loads the model once and takes the first ``--steps`` batches the trainer would train on
(same pairs, seed and page-aware sampler). For every batch, each variant runs the step's work, the loss's
forward and backward under bf16 autocast as the trainer runs it, in an order that rotates batch by batch,
so a busy neighbour on a shared machine slows all variants alike: compare the ratios (per batch, against
the old default), not the absolute seconds. The optimizer step and data collation are the same for every
variant and are left out. For each call it also records the peak resident memory above the memory
before the call (``VmHWM`` reset through ``/proc/self/clear_refs``). The tokens each variant embeds per
step (padding included) are counted from the batches themselves: a noise-free account of the work.

With ``--trainer-steps N`` it also times whole trainer steps (data, loss, backward, optimizer) of the old
and the new default, each run in its own process, on one and on two threads
(``benchmarks/results/train_step_trainer.md``).

With ``--quality-steps N`` it also trains the old and the new default loss for N steps each on the whole
corpus and scores both with ``sitetune evaluate`` on the packaged question set
(``benchmarks/results/train_step_quality.md``).

    python benchmarks/train_step_cost.py --corpus ../shared/data/cbs_graduate_programs.csv
    python benchmarks/train_step_cost.py --corpus ../shared/data/cbs_graduate_programs.csv --skip-cost --trainer-steps 5
    python benchmarks/train_step_cost.py --skip-cost --quality-steps 30   # --corpus defaults to the CBS file
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

from machine import describe_machine, run_sitetune

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


TRAINER_VARIANTS = {"before": ("cached_mnrl", 32), "after": ("sorted_mnrl", 16)}


def trainer_worker(variant: str, pairs_dir: str, steps: int, threads: int) -> None:
    """Train ``steps`` real trainer steps of ``variant`` on ``threads`` threads; print one JSON line."""
    import resource
    import shutil
    import tempfile
    from dataclasses import replace

    import torch

    from sitetune.config import RETRIEVAL_RECIPE
    from sitetune.train import train

    torch.set_num_threads(threads)
    loss, mbs = TRAINER_VARIANTS[variant]
    config = replace(RETRIEVAL_RECIPE, loss=loss, mini_batch_size=mbs, max_steps=steps, checkpoint_every=10_000)
    out = Path(tempfile.mkdtemp(prefix="step-cost-")) / "model"
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        result = train(config, out=out, pairs_dir=pairs_dir, progress=False)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "variant": variant, "threads": threads, "s_per_step": result.seconds_per_step,
        "cpu_s_per_step": result.cpu_seconds_per_step, "page_faults": after.ru_minflt - before.ru_minflt,
        "peak_mib": after.ru_maxrss // 1024,
    }))


def trainer_part(args: argparse.Namespace, pairs_dir: Path, header: list[str]) -> None:
    """Whole trainer steps (data, loss, backward, optimizer), before vs after, on 1 and on 2 threads.

    Each run is its own process; the order is before, after, after, before (ABBA) per thread count, so a
    load that drifts during the benchmark weighs on both alike.
    """
    started = time.time()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    loads = [os.getloadavg()[0]]
    for threads in (1, 2):
        for variant in ("before", "after", "after", "before"):
            proc = subprocess.run(
                [sys.executable, __file__, "--trainer-worker", variant, "--pairs-dir", str(pairs_dir),
                 "--steps", str(args.trainer_steps), "--threads", str(threads)],
                capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
            )
            if proc.returncode != 0:
                sys.exit(f"{variant} on {threads} threads failed: {proc.stderr[-3000:]}")
            row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.setdefault((variant, threads), []).append(row)
            loads.append(os.getloadavg()[0])
            print(row, flush=True)
    lines = [
        "## Training step cost: whole trainer steps, before and after, 1 and 2 threads",
        "",
        *header,
        f"- Each run: `train()` with the retrieval recipe for {args.trainer_steps} steps (checkpoints off) in its "
        "own process, torch threads set; order before, after, after, before per thread count; whole benchmark "
        f"{(time.time() - started) / 60:.0f} min; 1-minute load average {min(loads):.1f} to {max(loads):.1f}",
        "",
        "| threads | loss set-up | wall s/step (2 runs) | CPU s/step (2 runs) | page faults per run | peak RSS MiB |",
        "|---:|---|---|---|---:|---:|",
    ]
    for threads in (1, 2):
        for variant, label in (("before", "cached_mnrl, mini-batch 32"), ("after", "sorted_mnrl, mini-batch 16")):
            rows = runs[(variant, threads)]
            wall = " / ".join(f"{r['s_per_step']:.1f}" for r in rows)
            cpu = " / ".join(f"{r['cpu_s_per_step']:.1f}" for r in rows)
            faults = round(statistics.mean(r["page_faults"] for r in rows))
            peak = max(r["peak_mib"] for r in rows)
            lines.append(f"| {threads} | {label} ({variant}) | {wall} | {cpu} | {faults:,} | {peak:,} |")
        before = statistics.mean(r["s_per_step"] for r in runs[("before", threads)])
        after = statistics.mean(r["s_per_step"] for r in runs[("after", threads)])
        lines.append(f"| {threads} | speed-up, mean wall s/step before / after | {before / after:.2f}x | | | |")
    lines += [
        "",
        "Wall s/step leaves the first (warm-up) step out; CPU s/step counts every thread of the process from",
        "the first step on. On a machine shared with other jobs two torch threads wait on each other (a thread",
        "descheduled mid-operation stalls its partner), so there the one-thread rows are the cleaner measure of",
        "the work a step does.",
        "",
    ]
    (RESULTS / "train_step_trainer.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def quality_part(args: argparse.Namespace, pairs_dir: Path, header: list[str]) -> None:
    """Train both loss set-ups for the same steps, evaluate them together, and write the comparison.

    Models and the evaluation already in ``--workdir`` from the same command are reused (``--retrain``
    trains and evaluates again), so the fragment can be rewritten without hours of CPU.
    """
    import math

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    trained: dict[str, dict[str, Any]] = {}
    fresh = args.retrain
    for key, (loss, mbs) in {"before": ("cached_mnrl", 32), "after": ("sorted_mnrl", 16)}.items():
        model = work / f"model-{key}"
        summary = model / "training" / "summary.json"
        if not args.retrain and summary.is_file():
            trained[key] = json.loads(summary.read_text())
            if trained[key]["steps"] == args.quality_steps:
                continue
        fresh = True
        trained[key] = run_sitetune(
            "train", "--pairs", str(pairs_dir), "--out", str(model), "--overwrite", "--no-progress",
            "--max-steps", str(args.quality_steps), "--loss", loss, "--mini-batch-size", str(mbs),
        )
    metrics_file = work / "eval" / "metrics.json"
    if fresh or not metrics_file.is_file():
        run_sitetune(
            "evaluate", "--corpus", args.corpus, "--model", "base", "--model", str(work / "model-before"),
            "--model", str(work / "model-after"), "--queries", "cbs", "--no-answers", "--out", str(work / "eval"),
        )
    metrics = json.loads(metrics_file.read_text())
    if not fresh:
        done = dt.datetime.fromtimestamp(metrics_file.stat().st_mtime, dt.UTC)
        header = [*header, f"- Models and evaluation reused from `{work}` (evaluated {done:%Y-%m-%d %H:%M} UTC)"]
    scores = metrics["metrics"]
    sts = metrics.get("sts_spearman", {})
    questions = next(q for q in scores["base"] if "question" in q or q.startswith("cbs"))
    before_q = metrics["per_query_ndcg@10"]["model-before"][questions]
    after_q = metrics["per_query_ndcg@10"]["model-after"][questions]
    deltas = [after_q[k] - before_q[k] for k in before_q]
    mean = statistics.mean(deltas)
    se = statistics.stdev(deltas) / math.sqrt(len(deltas))
    sets = [q for q in (questions, "titles", "same_page") if q in scores["base"]]
    lines = [
        "## Training step cost: does the cheaper loss train as well?",
        "",
        *header,
        f"- Both models: the retrieval recipe for {args.quality_steps} steps on every page (same pairs, seed and "
        "batches); only the loss set-up differs. Each model alone (dense retrieval), `sitetune evaluate "
        f"--queries cbs` (report: `{work / 'eval'}`). The two trainings ran one after the other at whatever load "
        "the shared machine had, so their seconds compare nothing; the interleaved step costs are in "
        "`train_step_cost.md` and `train_step_trainer.md`.",
        "",
        "| model | loss | steps | wall s | s/step | " + " | ".join(f"nDCG@10 {q}" for q in sets)
        + " | STS Spearman |",
        "|---|---|---:|---:|---:|" + "---:|" * len(sets) + "---:|",
        "| base | | | | | " + " | ".join(f"{scores['base'][q]['ndcg@10']:.3f}" for q in sets)
        + f" | {sts.get('base', float('nan')):.3f} |",
    ]
    for key, label in (("before", "cached_mnrl, mini-batch 32"), ("after", "sorted_mnrl, mini-batch 16")):
        t, name = trained[key], f"model-{key}"
        lines.append(
            f"| {key} | {label} | {t['steps']} | {t['train_seconds']:.0f} | {t['seconds_per_step']:.2f} | "
            + " | ".join(f"{scores[name][q]['ndcg@10']:.3f}" for q in sets)
            + f" | {sts.get(name, float('nan')):.3f} |"
        )
    lines += [
        "",
        f"Per question ({len(deltas)} questions), after minus before nDCG@10: mean {mean:+.4f}, standard error "
        f"{se:.4f} ({mean / se:+.1f} SE); after better on {sum(d > 1e-9 for d in deltas)}, worse on "
        f"{sum(d < -1e-9 for d in deltas)}, equal on {sum(abs(d) <= 1e-9 for d in deltas)}. The two losses have "
        "the same gradients (tests/test_train.py checks it); the runs differ only in their dropout masks and "
        "bf16 rounding.",
        "",
    ]
    (RESULTS / "train_step_quality.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/cbs_graduate_programs.csv")
    parser.add_argument("--steps", type=int, default=6, help="Batches to time (each by every variant)")
    parser.add_argument("--fp32", action="store_true", help="Also time the sorted loss without bf16 autocast")
    parser.add_argument("--skip-cost", action="store_true", help="Skip the loss timing")
    parser.add_argument("--trainer-steps", type=int, default=0,
                        help="Also time whole trainer steps (before vs after, 1 and 2 threads), this many per run")
    parser.add_argument("--quality-steps", type=int, default=0, help="Train both losses this long and evaluate")
    parser.add_argument("--workdir", default="runs/bench-step-cost")
    parser.add_argument("--retrain", action="store_true", help="Quality: train and evaluate even if done before")
    parser.add_argument("--trainer-worker", help=argparse.SUPPRESS)
    parser.add_argument("--pairs-dir", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trainer_worker:
        trainer_worker(args.trainer_worker, args.pairs_dir, args.steps, args.threads)
        return

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
    if args.trainer_steps > 0:
        trainer_part(args, pairs_dir, header)
    if args.quality_steps > 0:
        quality_part(args, pairs_dir, header)


if __name__ == "__main__":
    main()
