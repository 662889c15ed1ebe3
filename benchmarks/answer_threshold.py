"""Choose the answer's "not found" threshold on development questions of several sites; report test questions.

For every question (answerable or marked unanswerable) the served answerer is asked once with no threshold,
which gives the best sentence score and whether the answer holds a judged answer. A threshold t then answers
"not found" exactly for the questions scoring below t, so every candidate t is scored without asking again.
The default is the highest t whose development share of answerable questions wrongly answered "not found" is
at most ``--max-wrong`` (the goal: 10%), pooled over sites; the table reports the test half.
Writes ``benchmarks/results/answer_threshold.md``.

Usage:
    python benchmarks/answer_threshold.py --site cbs=runs/cbs-store:cbs-v2 --site stirling=runs/stir-store:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.answer import Answerer
from sitetune.config import AnswerConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.querysets import Query, load_query_file, split_queries
from sitetune.evaluation.served import AnswerOutcome, answer_outcome
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "answer_threshold.md"


def outcomes(spec: str) -> tuple[str, str, list[AnswerOutcome], list[AnswerOutcome]]:
    """``name=STORE:set1,set2`` → (name, model, development outcomes, test outcomes) with no threshold."""
    name, rest = spec.split("=", 1)
    store, sets = rest.rsplit(":", 1)
    with Searcher.open(store) as searcher:
        corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
        answerer = Answerer(searcher, replace(AnswerConfig(), min_score=-1e9))
        dev: list[Query] = []
        test: list[Query] = []
        for query_file in sets.split(","):
            qs = load_query_file(query_file, corpus)
            d, t = split_queries([replace(q, id=f"{query_file}/{q.id}") for q in qs.queries + qs.unanswerable])
            dev += d
            test += t
        return (name, Path(searcher.model_path).name, [answer_outcome(answerer, q) for q in dev],
                [answer_outcome(answerer, q) for q in test])


def rates(items: list[AnswerOutcome], threshold: float) -> tuple[float, float, float]:
    """(answered correctly, answerable → not found, unanswerable → not found) under ``threshold``."""
    answerable = [o for o in items if o.answerable]
    unanswerable = [o for o in items if not o.answerable]
    correct = np.mean([o.correct and o.score >= threshold for o in answerable]) if answerable else np.nan
    wrong = np.mean([o.score < threshold for o in answerable]) if answerable else np.nan
    right = np.mean([o.score < threshold for o in unanswerable]) if unanswerable else np.nan
    return float(correct), float(wrong), float(right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--max-wrong", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    sites = [outcomes(spec) for spec in args.site]
    pooled_dev = [o for _, _, dev, _ in sites for o in dev]
    candidates = np.round(np.arange(0.0, 1.2, 0.01), 2)
    ok = [t for t in candidates if rates(pooled_dev, float(t))[1] <= args.max_wrong]
    chosen = float(max(ok)) if ok else float(candidates[0])
    current = AnswerConfig().min_score
    lines = [
        "## Answer threshold chosen on development questions, reported on test questions",
        "",
        f"- Command: `python benchmarks/answer_threshold.py {' '.join('--site ' + s for s in args.site)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- " + "; ".join(f"{n} (model `{m}`): {len(d)} development, {len(t)} test questions" for n, m, d, t in sites),
        f"- Rule: the highest threshold whose pooled development share of answerable questions answered "
        f"\"not found\" is at most {args.max_wrong:.0%}: **{chosen:.2f}** (current default {current:.2f}).",
        "",
        "| site | threshold | answered correctly | answerable → not found | unanswerable → not found |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, _, _, test in sites:
        for t in sorted({current, chosen}):
            c, w, r = rates(test, t)
            lines.append(f"| {name} | {t:.2f} | {c:.1%} | {w:.1%} | {r:.1%} |")
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
