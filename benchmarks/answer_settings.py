"""The extractive answer's settings re-chosen on development questions of the tuned stores; test half reported.

The answer's defaults (``AnswerConfig``: sections read, margins, the bonus of search's first section, units
kept) were chosen on base-model stores (``answers.md``). This re-runs that choice on the stores of the default
tuned models with today's served search: every question is searched once (the served ``Searcher``, hits
cached), then every setting of a grid answers it with the served ``extractive_answer`` and is judged by
``sitetune.evaluation.served.judge_answer``, as ``answer_outcome`` judges the service's answers. The objective
on the development half, pooled over sites, is the mean of "holds the answer" and "first citation answers"
(ties: fewer words); the best setting and the defaults are shown on both halves. Writes
``benchmarks/results/answer_settings.md``.

Usage:
    python benchmarks/answer_settings.py --site cbs=runs/quality/cbs/stores/cbs-default:cbs-v2 \\
        --site stirling=runs/quality/stirling/stores/stir-default:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.answer import Answerer, SentenceScorer, extractive_answer
from sitetune.config import AnswerConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.querysets import Query, load_query_file, split_queries
from sitetune.evaluation.served import judge_answer
from sitetune.search import Searcher, SearchHit

RESULT = Path(__file__).resolve().parent / "results" / "answer_settings.md"
HALVES = ("dev", "test")


@dataclass(frozen=True)
class Asked:
    """One question with the served search's hits (read once) and the question as search read it."""

    half: str
    query: Query
    hits: list[SearchHit]
    read_as: str


@dataclass(frozen=True)
class Figures:
    """Answer metrics over one half of one site (shares of answerable questions; words over found answers)."""

    holds: float
    first: float
    not_found: float
    words: float
    stray: float


def figures(asked: list[Asked], scorer: SentenceScorer) -> Figures:
    outcomes = [judge_answer(a.query, extractive_answer(a.read_as, a.hits, scorer))
                for a in asked if a.query.answerable]
    found = [o for o in outcomes if o.found]
    return Figures(
        holds=float(np.mean([o.correct for o in outcomes])),
        first=float(np.mean([o.first_cited for o in outcomes])),
        not_found=float(np.mean([not o.found for o in outcomes])),
        words=float(np.mean([o.words for o in found])) if found else 0.0,
        stray=float(np.mean([o.stray for o in found])) if found else 0.0,
    )


def grid() -> list[AnswerConfig]:
    base = AnswerConfig()
    return [
        replace(base, top_hit_bonus=bonus, margin=margin, second_margin=second, sections=sections,
                max_sentences=units)
        for bonus, margin, second, sections, units in itertools.product(
            (0.0, 0.1, 0.25, 0.5, 1.0), (0.15, 0.25, 0.35), (0.0, 0.05, 0.15), (3, 5, 8), (4, 6)
        )
    ]


def describe(config: AnswerConfig) -> str:
    return (f"bonus {config.top_hit_bonus:g}, margin {config.margin:g}, second {config.second_margin:g}, "
            f"sections {config.sections}, units {config.max_sentences}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    settings = grid()
    deepest = max(c.sections for c in settings)
    sites: list[tuple[str, str, Searcher, list[Asked]]] = []
    for spec in args.site:
        name, rest = spec.split("=", 1)
        store, sets = rest.rsplit(":", 1)
        searcher = Searcher.open(store)
        corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
        asked: list[Asked] = []
        for query_file in sets.split(","):
            qs = load_query_file(query_file, corpus)
            # The same halves as benchmarks/answers.py: ids prefixed with the set's name.
            halves = split_queries([replace(q, id=f"{query_file}/{q.id}") for q in qs.queries + qs.unanswerable])
            for half, queries in zip(HALVES, halves, strict=True):
                asked += [Asked(half, q, searcher.search(q.text, k=deepest), searcher.normalise_query(q.text))
                          for q in queries]
        sites.append((name, Path(searcher.model_path).name, searcher, asked))
        print(f"{name}: {len(asked)} questions searched", flush=True)

    def measure(config: AnswerConfig) -> dict[tuple[str, str], Figures]:
        out = {}
        for name, _, searcher, asked in sites:
            scorer = Answerer(searcher, config).scorer  # the served scorer: the site's words, shared vectors
            for half in HALVES:
                out[(name, half)] = figures([a for a in asked if a.half == half], scorer)
        return out

    scored = []
    for i, config in enumerate(settings):
        result = measure(config)
        dev = [result[(name, "dev")] for name, *_ in sites]
        objective = float(np.mean([(f.holds + f.first) / 2 for f in dev]))
        scored.append((objective, -float(np.mean([f.words for f in dev])), i, result))
        if i % 30 == 0:
            print(f"{i}/{len(settings)} settings", flush=True)
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    best_objective, _, best_index, best = scored[0]
    default = AnswerConfig()
    default_result = measure(default)
    default_objective = float(np.mean([(default_result[(n, "dev")].holds + default_result[(n, "dev")].first) / 2
                                       for n, *_ in sites]))
    ties = sum(1 for s in scored if s[0] == best_objective)

    lines = [
        "## Answer settings re-chosen on development questions of the tuned stores",
        "",
        f"- Command: `python benchmarks/answer_settings.py {' '.join('--site ' + s for s in args.site)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- " + "; ".join(f"{n}: model `{m}`, {sum(a.half == 'dev' for a in asked)} development and "
                         f"{sum(a.half == 'test' for a in asked)} test questions" for n, m, _, asked in sites),
        f"- {len(settings)} settings (bonus of search's first section 0-1, margin 0.15-0.35, second-section "
        "margin 0-0.15, 3/5/8 sections, 4/6 units); objective on the development half, pooled over sites: "
        "mean of holds the answer and first citation answers (ties: fewer words). "
        f"Best {best_objective:.3f} ({ties} settings tie), defaults {default_objective:.3f}.",
        "",
        "| setting | site | half | holds the answer | first citation answers | answerable → not found | words "
        "| cites an irrelevant section |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, result in (("defaults: " + describe(default), default_result),
                          ("best on development: " + describe(settings[best_index]), best)):
        for name, *_ in sites:
            for half in HALVES:
                f = result[(name, half)]
                lines.append(f"| {label} | {name} | {half} | {f.holds:.1%} | {f.first:.1%} | {f.not_found:.1%} "
                             f"| {f.words:.0f} | {f.stray:.1%} |")
    for _, _, searcher, _ in sites:
        searcher.close()
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
