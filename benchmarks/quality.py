"""Retrieval and answer quality on real sites: base, BM25, tuned dense and the served search side by side.

For each site, ``sitetune evaluate`` (the served scoring path) runs with the packaged base model and the
site's tuned model on the site's question sets; the fragment shows, per question set, nDCG@10, answers@1
(first result answers the question), MRR@10 and Recall@10 for ``base``, the tuned model's dense ranking,
``bm25``, ``base+search`` and ``<tuned>+search``, then the served answerer's answer metrics.

Usage:
    python benchmarks/quality.py --site cbs=../shared/data/cbs_graduate_programs.csv:runs/cbs-model:cbs,cbs-v2 \
        --site stirling=runs/sites/stirling.jsonl:runs/stir-model:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import sys
import time
from pathlib import Path

from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
METRICS = ("ndcg@10", "answers@1", "mrr@10", "recall@10")


def _pct(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=CORPUS:MODEL:set1[,set2]")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.md")
    parser.add_argument("--report-dir", type=Path, default=REPO / "runs" / "quality")
    args = parser.parse_args()

    from sitetune.atomic import atomic_write_text
    from sitetune.evaluation import evaluate

    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = ["## Quality on real sites: base, BM25, tuned dense and the served search", "",
             f"- Command: `{command}`",
             f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
             "- Every row is ranked by the searcher `sitetune search` serves (`sitetune evaluate`); "
             "`+search` rows are the served pipeline. answers@1 = the first result answers the question "
             "(a grade-2 chunk). Metric definitions as in ranx.", ""]
    for spec in args.site:
        name, rest = spec.split("=", 1)
        corpus, model, sets = rest.rsplit(":", 2)
        start = time.perf_counter()
        result = evaluate(corpus, ["base", model], sets.split(","), None, args.report_dir / name, same_page_n=100,
                          progress=False, log=lambda m: print(m, file=sys.stderr))
        seconds = time.perf_counter() - start
        lines += [f"### {name}: {result.chunks} unique chunks, model `{model}` ({seconds:.0f} s)", "",
                  "- Settings: " + "; ".join(", ".join(f"{k}={v}" for k, v in vals.items())
                                             for vals in result.settings.values()), ""]
        for qs in sets.split(","):
            info = result.query_sets[qs]
            lines += [f"#### {qs}: {info['queries']} ranked questions, {info['unanswerable']} unanswerable", "",
                      "| system | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
            for label in result.labels:
                vals = result.metrics[label][qs]
                lines.append(f"| {label} | " + " | ".join(f"{vals[m]:.3f}" for m in METRICS) + " |")
            lines += ["", "| served answerer | answered correctly | answerable → not found | "
                          "unanswerable → not found |", "|---|---:|---:|---:|"]
            for label, by_set in result.answers.items():
                m = by_set[qs]
                lines.append(f"| {label} | {_pct(m['answered_correctly'])} | {_pct(m['wrongly_not_found'])} | "
                             f"{_pct(m['unanswerable_not_found'])} |")
            lines.append("")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
