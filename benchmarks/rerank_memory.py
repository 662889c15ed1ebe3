"""Peak memory and time of the reranker's training: one pass per step against cached mini-batches.

Each setting of ``RerankTrainConfig.mini_batch_size`` trains the cross-encoder for a few steps in a fresh
process (``train_reranker``, the code ``sitetune train --reranker`` runs, defaults otherwise: 16 anchors of
5 candidates a step, 256 tokens) on a copy of a tuned model folder, and reports that process's peak RSS
and seconds (mining and loading included, the same in every row). Settings run one after the other on the
same machine; compare rows, not runs. Writes ``benchmarks/results/rerank_memory.md``.

Usage:
    python benchmarks/rerank_memory.py --corpus runs/sites/stirling.jsonl --model runs/stir-default \\
        --steps 6 --mini-batch none --mini-batch 32 --mini-batch 16
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe_machine, write_fragment

RESULT = Path(__file__).resolve().parent / "results" / "rerank_memory.md"

CHILD = """
import json, resource, sys, time
from dataclasses import replace
from sitetune.config import Recipe, RerankTrainConfig
from sitetune.corpus import Corpus
from sitetune.pairs import build_pairs, default_pairs_config
from sitetune.rerank.train import train_reranker

corpus, model, steps, mini = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
started = time.perf_counter()
pairs = build_pairs(Corpus.load(corpus).records, default_pairs_config(Recipe.RETRIEVAL))
config = replace(RerankTrainConfig(), steps=steps, mini_batch_size=None if mini == "none" else int(mini))
result = train_reranker(pairs.dataset, model, model, config)
print(json.dumps({"seconds": time.perf_counter() - started, "losses": result.losses,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="the site's corpus (its pairs are built as train does)")
    parser.add_argument("--model", required=True, type=Path, help="a tuned model folder (copied, not changed)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--mini-batch", action="append", required=True,
                        help="a mini_batch_size to measure, or 'none' for one pass (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    rows = []
    for mini in args.mini_batch:
        with tempfile.TemporaryDirectory(prefix="sitetune-rerank-memory-") as work:
            model = Path(work) / "model"
            shutil.copytree(args.model, model, ignore=shutil.ignore_patterns("reranker"))
            run = subprocess.run([sys.executable, "-c", CHILD, args.corpus, str(model), str(args.steps), mini],
                                 capture_output=True, text=True, check=True)
        outcome = json.loads(run.stdout.strip().splitlines()[-1])
        rows.append((mini, outcome))
        print(mini, f"{outcome['peak_mb']:.0f} MB, {outcome['seconds']:.0f} s", flush=True)

    lines = [
        "## Reranker training: peak memory with and without cached mini-batches",
        "",
        f"- Command: `python benchmarks/rerank_memory.py --corpus {args.corpus} --model {args.model} "
        f"--steps {args.steps} {' '.join('--mini-batch ' + m for m in args.mini_batch)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        f"- {args.steps} steps of the default `RerankTrainConfig` (16 anchors x 5 candidates, 256 tokens), each "
        "setting in its own process; seconds include building the pairs, mining and loading (the same work "
        "in every row).",
        "",
        "| mini_batch_size | peak RSS | seconds | loss at the last step |",
        "|---|---:|---:|---:|",
    ]
    for mini, outcome in rows:
        last = outcome["losses"][-1][1] if outcome["losses"] else float("nan")
        label = "none (one pass)" if mini == "none" else mini
        lines.append(f"| {label} | {outcome['peak_mb'] / 1024:.1f} GB | {outcome['seconds']:.0f} | {last:.3f} |")
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
