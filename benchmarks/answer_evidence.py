"""Does a second model tell unanswerable questions apart better than the tuned model's own evidence?

The answer says "not found" when the best quotable unit of the top sections scores below ``min_score``
(its *evidence*). A tuned model pulls a site's texts together, so a question about a topic the site covers
without the asked-for fact (a figure it never gives) can still find a close unit. This asks whether the
packaged base model, scoring the same units of the same served answer, separates those questions better.

For every question (answerable or marked unanswerable) the served answerer is asked once with no threshold;
the units it read (the top ``sections`` sections) are then scored by the base model with the same scorer
(cosine plus the lexical term, the site's common words excluded). Reported per site and half:

- ROC AUC of each evidence for "unanswerable scores lower" (0.5 = no separation);
- the rule "not found when the tuned evidence is below ``min_score`` or the base evidence is below b",
  b the highest value whose pooled development share of answerable questions answered "not found" stays
  at most ``--max-wrong``, beside the served rule (tuned evidence only), on the test halves.

Writes ``benchmarks/results/answer_evidence.md``.

Usage:
    python benchmarks/answer_evidence.py --site cbs=runs/cbs-store:cbs-v2 --site stirling=runs/stir-store:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.answer import Answerer
from sitetune.answer.extractive import SentenceScorer
from sitetune.config import AnswerConfig
from sitetune.corpus import Corpus
from sitetune.encode import Encoder, load_encoder
from sitetune.evaluation.querysets import load_query_file, split_queries
from sitetune.evaluation.served import judge_answer
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "answer_evidence.md"


@dataclass(frozen=True)
class Evidence:
    """One question's two evidences and its judgement."""

    site: str
    half: str
    answerable: bool
    correct: bool
    tuned: float
    base: float


def site_evidence(spec: str, base: Encoder, config: AnswerConfig) -> tuple[str, str, list[Evidence]]:
    """``name=STORE:set1,set2`` → (name, model, the evidence of every question in both halves)."""
    name, rest = spec.split("=", 1)
    store, sets = rest.rsplit(":", 1)
    rows: list[Evidence] = []
    with Searcher.open(store) as searcher:
        corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
        answerer = Answerer(searcher, replace(config, min_score=-1e9))
        second = SentenceScorer(base, config, common_words=searcher.vocabulary.common_words)
        for query_file in sets.split(","):
            qs = load_query_file(query_file, corpus)
            named = [replace(q, id=f"{query_file}/{q.id}") for q in qs.queries + qs.unanswerable]
            for half, queries in zip(("dev", "test"), split_queries(named), strict=True):
                for q in queries:
                    answer = answerer.answer(q.text)
                    views = [view for hit in answer.hits[: config.sections] for _, view in second.unit_views(hit)]
                    scores = second.score(searcher.normalise_query(q.text), views)
                    rows.append(Evidence(name, half, q.answerable, judge_answer(q, answer).correct, answer.score,
                                         float(scores.max()) if len(scores) else 0.0))
        return name, Path(searcher.model_path).name, rows


def auc(rows: Sequence[Evidence], key: str) -> float:
    """P(an unanswerable question's evidence < an answerable one's), ties counted half."""
    low = [getattr(r, key) for r in rows if not r.answerable]
    high = [getattr(r, key) for r in rows if r.answerable]
    if not low or not high:
        return float("nan")
    pairs = [(a < b) + 0.5 * (a == b) for a in low for b in high]
    return float(np.mean(pairs))


def not_found(rows: Sequence[Evidence], threshold: float, base_threshold: float) -> list[bool]:
    return [r.tuned < threshold or r.base < base_threshold for r in rows]


def rates(rows: Sequence[Evidence], threshold: float, base_threshold: float) -> tuple[float, float, int, int]:
    """(holds the answer, answerable → not found, unanswerable → not found, unanswerable)."""
    flags = not_found(rows, threshold, base_threshold)
    answerable = [(r, f) for r, f in zip(rows, flags, strict=True) if r.answerable]
    unanswerable = [f for r, f in zip(rows, flags, strict=True) if not r.answerable]
    holds = float(np.mean([r.correct and not f for r, f in answerable])) if answerable else float("nan")
    wrong = float(np.mean([f for _, f in answerable])) if answerable else float("nan")
    return holds, wrong, sum(unanswerable), len(unanswerable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--max-wrong", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    config = AnswerConfig()
    base = load_encoder("base")
    sites = [site_evidence(spec, base, config) for spec in args.site]
    everything = [r for _, _, rows in sites for r in rows]
    dev = [r for r in everything if r.half == "dev"]
    candidates = np.round(np.arange(0.0, 1.0, 0.01), 2)
    ok = [b for b in candidates if rates(dev, config.min_score, float(b))[1] <= args.max_wrong]
    chosen = float(max(ok)) if ok else 0.0

    lines = [
        "## A second model's evidence for \"not found\" (development → test)",
        "",
        f"- Command: `python benchmarks/answer_evidence.py {' '.join('--site ' + s for s in args.site)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- " + "; ".join(f"{n}: served model `{m}`" for n, m, _ in sites)
        + "; second model: the packaged base all-MiniLM-L6-v2 on the same units",
        f"- Rule: not found when tuned evidence < {config.min_score:.2f} (served) or base evidence < b; b is the "
        f"highest value keeping the pooled development share of answerable questions answered \"not found\" at "
        f"most {args.max_wrong:.0%}: **b = {chosen:.2f}**.",
        "",
        "| site | half | questions (unanswerable) | AUC tuned | AUC base | served: holds / answerable → NF / "
        "unanswerable → NF | also not found when base < b: holds / answerable → NF / unanswerable → NF |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for name, _, rows in sites:
        for half in ("dev", "test"):
            part = [r for r in rows if r.half == half]
            unanswerable = sum(not r.answerable for r in part)
            cells = []
            for b in (-1.0, chosen):
                holds, wrong, right, n = rates(part, config.min_score, b)
                cells.append(f"{holds:.1%} / {wrong:.1%} / {right} of {n}")
            lines.append(f"| {name} | {half} | {len(part)} ({unanswerable}) | {auc(part, 'tuned'):.3f} | "
                         f"{auc(part, 'base'):.3f} | {cells[0]} | {cells[1]} |")
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
