"""What the extractive answer quotes, on the test half and the whole of each site's questions, before/after.

For each site (a store and its question sets) the served answerer (``sitetune.evaluation.served.answer_outcome``,
the evaluation's one scoring path, with the service's ``AnswerConfig``) answers every question, answerable
or not. Columns, per site, for the test half (settings are chosen on the development half) and the whole set:

- holds the answer: share of answerable questions whose answer text contains a judged answer string;
- first citation answers: share of answerable questions whose first citation is a section that answers
  them (grade 2);
- search's first result answers: the same for search's first hit, which bounds the first citation;
- answerable → not found (wrongly) and unanswerable → not found (rightly, as a count);
- words: mean length of the answers to answerable questions (found ones; citation markers removed);
- cites an irrelevant section: share of those answers with a citation to a section not judged relevant.

``--save FILE`` keeps every question's outcome as JSON; ``--compare FILE`` (repeatable: files saved by
earlier runs on the same stores, e.g. the previous commit's code, or another ``--min-score``) adds their
rows to the table above this run's, so before and after are the same questions on the same stores.
``--min-score`` overrides the "not found" threshold (it belongs to the model: the service's default was
chosen for tuned models, benchmarks/answer_threshold.py gives the value for another). Writes
``benchmarks/results/answers.md``.

Usage:
    python benchmarks/answers.py --site cbs=runs/answers/cbs-base:cbs-v2 \\
        --site stirling=runs/answers/stir-base:stirling --save runs/answers/after.json \\
        --compare runs/answers/before.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from machine import describe_machine, write_fragment

from sitetune.answer import Answerer
from sitetune.config import AnswerConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.querysets import load_query_file, split_queries
from sitetune.evaluation.served import answer_outcome
from sitetune.models import base_model_path
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "answers.md"


def site_outcomes(spec: str, config: AnswerConfig) -> tuple[str, str, list[dict[str, Any]]]:
    """``name=STORE:set1,set2`` → (name, model, one outcome dict per question with its ``half``)."""
    name, rest = spec.split("=", 1)
    store, sets = rest.rsplit(":", 1)
    rows: list[dict[str, Any]] = []
    with Searcher.open(store) as searcher:
        corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
        answerer = Answerer(searcher, config)
        for query_file in sets.split(","):
            qs = load_query_file(query_file, corpus)
            # The same halves as benchmarks/answer_threshold.py: ids prefixed with the set's name.
            named = [replace(q, id=f"{query_file}/{q.id}") for q in qs.queries + qs.unanswerable]
            dev, test = split_queries(named)
            for half, queries in (("dev", dev), ("test", test)):
                rows += [{**asdict(answer_outcome(answerer, q)), "half": half} for q in queries]
        model = Path(searcher.model_path)
        label = "base (packaged all-MiniLM-L6-v2)" if model.resolve() == base_model_path().resolve() else model.name
        return name, label, rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The table's columns for a list of outcome dicts."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    found = [r for r in answerable if r["found"]]  # length and citations of answers to answerable questions

    def share(flags: list[bool]) -> float:
        return sum(flags) / len(flags) if flags else float("nan")

    return {
        "n": len(answerable),
        "holds": share([r["correct"] for r in answerable]),
        "first": share([r["first_cited"] for r in answerable]),
        # Outcomes saved before the column existed lack it (NaN: shown as "–").
        "search_first": share([r["search_first"] for r in answerable]) if all("search_first" in r for r in answerable)
        else float("nan"),
        "wrong_nf": share([not r["found"] for r in answerable]),
        "right_nf": sum(not r["found"] for r in unanswerable),
        "unanswerable": len(unanswerable),
        "words": sum(r["words"] for r in found) / len(found) if found else float("nan"),
        "stray": share([r["stray"] for r in found]),
    }


def table_rows(label: str, site: str, rows: list[dict[str, Any]]) -> list[str]:
    out = []
    # Settings are chosen on the development half: the table shows the test half and the whole set.
    for half, keep in (("test", {"test"}), ("whole", {"dev", "test"})):
        s = summary([r for r in rows if r["half"] in keep])
        out.append(f"| {site} | {half} ({s['n']:.0f}) | {label} | {s['holds']:.1%} | {s['first']:.1%} | "
                   f"{'–' if s['search_first'] != s['search_first'] else format(s['search_first'], '.1%')} | "
                   f"{s['wrong_nf']:.1%} | {s['right_nf']:.0f} of {s['unanswerable']:.0f} | {s['words']:.0f} | "
                   f"{s['stray']:.1%} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--save", type=Path, help="write every question's outcome here (JSON)")
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="outcomes saved by an earlier run (--save), shown above this run's rows")
    parser.add_argument("--min-score", type=float, help="the 'not found' threshold (default: AnswerConfig's)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    # The answer code's last commit names the rows (uncommitted changes are marked).
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "src/sitetune/answer"], capture_output=True,
                            text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/sitetune/answer"], capture_output=True,
                           text=True, check=False).stdout.strip()
    commit = f"{commit}+changes" if dirty else commit
    config = AnswerConfig() if args.min_score is None else replace(AnswerConfig(), min_score=args.min_score)
    sites = [site_outcomes(spec, config) for spec in args.site]
    saved = {"commit": commit, "config": asdict(config),
             "sites": {name: {"model": model, "outcomes": rows} for name, model, rows in sites}}
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(saved, indent=1))
    earlier = [json.loads(path.read_text()) for path in args.compare]

    lines = ["## Extractive answers: what they quote, before and after (test half and whole set)", "",
             f"- Command: `python benchmarks/answers.py {' '.join('--site ' + s for s in args.site)}"
             + (f" --min-score {args.min_score}" if args.min_score is not None else "")
             + " --compare FILE" * len(earlier)
             + "` (FILE: the same command's `--save` output with the answer code of the commit shown)",
             f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
             "- " + "; ".join(f"{n}: model `{m}`" for n, m, _ in sites)
             + f"; this run's answer settings: {', '.join(f'{k} {v}' for k, v in asdict(config).items())}",
             "- holds the answer = the answer text contains a judged answer string; first citation answers = "
             "its first citation is a section judged to answer (grade 2); search's first result answers = the "
             "same for the first hit search returned (the answer quotes what search puts first, so this bounds the "
             "first citation); words and irrelevant citation (a citation "
             "of a section judged neither answering nor helping) over the found answers to answerable "
             "questions.", "",
             "| site | half (answerable) | code, threshold | holds the answer | first citation answers | "
             "search's first result answers | answerable → not found | unanswerable → not found | words | "
             "cites an irrelevant section |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    # Rows grouped by threshold, earlier runs first within a threshold.
    runs = sorted([*earlier, saved], key=lambda run: float(run["config"]["min_score"]))
    for name, _, _ in sites:
        for run in runs:
            if name in run["sites"]:
                label = f"{run['commit']}, {run['config']['min_score']:.2f}"
                lines += table_rows(label, name, run["sites"][name]["outcomes"])
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
