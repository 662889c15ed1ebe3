"""Benchmark the training recipes: retrieval vs the card recipe for the same wall time, then evaluate.

1. Page split (``--holdout`` of the pages held out): retrieval pairs, and card pairs rebuilt from the
   train pages only (so neither model sees a held-out page's text).
2. Train the retrieval recipe for ``--minutes``; train the card recipe for the wall time retrieval used.
3. ``sitetune.evaluation.evaluate``: base, card, retrieval, BM25 and hybrids on the held-out title
   queries, the packaged question set, and the general-English STS check.
4. Train the shipped model (retrieval recipe, every page) and score it on the question set.
5. Write ``benchmarks/results/training.md``.

    python benchmarks/train_recipes.py --corpus ../shared/data/cbs_graduate_programs.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from machine import describe_machine, run_sitetune

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--workdir", default="runs/bench-train")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--queries", default="cbs")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training.md"))
    parser.add_argument("--skip-shipped", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="score models already in --workdir again")
    args = parser.parse_args()

    from sitetune.corpus import Corpus
    from sitetune.evaluation import evaluate
    from sitetune.pairs import build_card_pairs, read_info, save_pairs

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    loads = [load()]
    pairs_eval = work / "pairs-eval"
    if not pairs_eval.exists():
        run_sitetune("pairs", args.corpus, "--out", str(pairs_eval), "--holdout-pages", str(args.holdout))
    held = set(read_info(pairs_eval)["heldout_pages"])
    pairs_card = work / "pairs-card"
    if not pairs_card.exists():
        records = [r for r in Corpus.load(args.corpus).records if r.page_name not in held]
        save_pairs(build_card_pairs(records), pairs_card)

    runs: dict[str, dict[str, Any]] = {}

    def trained(name: str, *train_args: str) -> dict[str, Any]:
        # --reuse: a model folder from an earlier run of this benchmark is scored again, not retrained.
        summary = work / name / "training" / "summary.json"
        if args.reuse and summary.is_file():
            return json.loads(summary.read_text())  # type: ignore[no-any-return]
        result = run_sitetune("train", *train_args, "--out", str(work / name), "--overwrite")
        loads.append(load())
        return result

    minutes = str(args.minutes)
    runs["retrieval"] = trained("retrieval", "--pairs", str(pairs_eval), "--max-minutes", minutes)
    same = f"{runs['retrieval']['train_seconds'] / 60:.2f}"
    runs["card"] = trained("card", "--pairs", str(pairs_card), "--recipe", "card", "--max-minutes", same)
    log = lambda m: print(m, flush=True)  # noqa: E731
    models = ["base", str(work / "card"), str(work / "retrieval")]
    ev = evaluate(args.corpus, models, [args.queries], pairs_eval, work / "eval", True,
                  progress=False, log=log)
    shipped_ev = None
    if not args.skip_shipped:
        runs["shipped"] = trained("shipped", "--corpus", args.corpus, "--max-minutes", minutes)
        shipped_ev = evaluate(args.corpus, [str(work / "shipped")], [args.queries], None,
                              work / "eval-shipped", True, progress=False, log=log)
    write_report(args, runs, ev, shipped_ev, loads, time.time() - started)


def write_report(
    args: argparse.Namespace,
    runs: dict[str, dict[str, Any]],
    ev: Any,
    shipped_ev: Any,
    loads: list[str],
    seconds: float,
) -> None:
    sets = [s for s in next(iter(ev.metrics.values()))]
    lines = [
        "## Training recipes: retrieval vs card, same wall time",
        "",
        f"Command: `python benchmarks/train_recipes.py --corpus {args.corpus} --minutes {args.minutes:g}`",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; whole benchmark {seconds / 60:.0f} min",
        f"- Machine: {describe_machine()}; load average (1/5/15 min) at start and after each run: {' | '.join(loads)}",
        f"- Split: {args.holdout:.0%} of pages held out (`pairs-eval/pairs_info.json`); neither trained "
        "model saw a held-out page's text. The question set covers every page.",
        "",
        "### Training",
        "",
        "| run | recipe | pairs | steps | batch | wall s | s/step | CPU s/step | precision | stopped by |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['recipe']} | {r['pairs']:,} | {r['steps']} | {r['batch_size']} | "
            f"{r['train_seconds']:.0f} | {r['seconds_per_step']:.2f} | {r['cpu_seconds_per_step']:.2f} | "
            f"{r['precision']} | {r['stopped_by']} |"
        )
    lines += [
        "",
        "CPU s/step counts every thread of the process: on 2 idle cores, wall s/step is about half of it;",
        "more means other jobs were sharing the CPU (the load averages above).",
        "",
        "### Retrieval quality (nDCG@10) and general-English similarity",
        "",
    ]
    header = "| model | " + " | ".join(sets) + " | STS Spearman |"
    lines += [header, "|---|" + "---:|" * (len(sets) + 1)]
    for label in ev.labels:
        row = [f"{ev.metrics[label][s]['ndcg@10']:.3f}" if s in ev.metrics[label] else "" for s in sets]
        sts = ev.sts.get(label)
        lines.append(
            f"| {label} | " + " | ".join(row) + f" | {sts:.3f} |"
            if sts is not None
            else f"| {label} | " + " | ".join(row) + " | |"
        )
    if shipped_ev is not None:
        ssets = [s for s in next(iter(shipped_ev.metrics.values())) if s not in ("titles", "same_page")]
        lines += [
            "",
            "### Shipped model (retrieval recipe, every page)",
            "",
            "Trained on all pages (no labels are used, so this is fair for the question set; its title-query",
            "scores are not held out and are left out here).",
            "",
            "| model | " + " | ".join(ssets) + " | STS Spearman |",
            "|---|" + "---:|" * (len(ssets) + 1),
        ]
        for label in shipped_ev.labels:
            row = [
                f"{shipped_ev.metrics[label][s]['ndcg@10']:.3f}"
                for s in ssets
                if s in shipped_ev.metrics[label]
            ]
            sts = shipped_ev.sts.get(label)
            lines.append(
                f"| {label} | " + " | ".join(row) + (f" | {sts:.3f} |" if sts is not None else " | |")
            )
    lines += [
        "",
        f"Full reports: `{args.workdir}/eval/report.md`"
        + (f", `{args.workdir}/eval-shipped/report.md`" if shipped_ev is not None else "")
        + ".",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
