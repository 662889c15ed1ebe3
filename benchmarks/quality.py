"""Retrieval quality benchmark: ``sitetune evaluate`` on the full CBS corpus, written as a markdown table.

Rows: base (the packaged all-MiniLM-L6-v2), every ``--model`` given, BM25 and each model fused with BM25
(what the search service serves). Query sets: held-out section titles (seeded page split, or
``--split-from``), same-page retrieval, and the packaged CBS question set. Also the general-English
Spearman per model.

Usage:
    .venv/bin/python benchmarks/quality.py [--model models/card] [--split-from pairs/card]
        [--out benchmarks/results/quality.md] [--report-dir /tmp/quality-report]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100", "map@100")


def machine() -> str:
    """CPU model and core count (lscpu), for the fragment's header."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
        model = names[0] if names else platform.processor()
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores visible"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", action="append", default=[], help="a tuned model folder (repeatable)")
    parser.add_argument("--split-from", type=Path, default=None, help="pairs folder: held-out title queries")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.md")
    parser.add_argument("--report-dir", type=Path, default=Path("/tmp/sitetune-quality-report"))
    args = parser.parse_args()

    from sitetune.atomic import atomic_write_text
    from sitetune.evaluation import evaluate

    start = time.perf_counter()
    result = evaluate(args.corpus, ["base", *args.model], ["cbs"], args.split_from, args.report_dir,
                      hybrid=True, progress=False, log=lambda m: print(m, file=sys.stderr))
    seconds = time.perf_counter() - start

    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "## Retrieval quality (CBS corpus)", "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine()}; run took {seconds:.0f} s.  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.  ",
        f"Corpus: {result.chunks} unique chunks ranked. Metrics by ranx (nDCG gain 2^grade − 1). "
        "`<model>+bm25` = reciprocal rank fusion (k=60) of the model's and BM25's top 100.", "",
    ]
    for name, info in result.query_sets.items():
        lines += [f"### {name} ({info['queries']} queries)", "", info["description"] + ".", "",
                  "| system | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        for label in result.labels:
            vals = result.metrics[label][name]
            lines.append(f"| {label} | " + " | ".join(f"{vals[m]:.3f}" for m in METRICS) + " |")
        lines.append("")
    lines += ["### General-English similarity (Spearman, 60 written pairs)", "",
              "| model | Spearman |", "|---|---|"]
    lines += [f"| {label} | {rho:.3f} |" for label, rho in result.sts.items()]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
