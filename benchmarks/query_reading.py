"""How search reads a question: spelling correction and page abbreviations, each on and off.

Every row ranks through ``sitetune.evaluation.served`` (the searcher ``sitetune search`` and the HTTP API
use) with ``SearchConfig.correct_spelling`` and ``SearchConfig.abbreviations`` off, one at a time, and both
on (the served default); every other setting at its default. Each question is encoded by the searcher
itself (correction changes the text that is encoded). Also lists every question whose top 10 changed
between "neither" and "both", with the text as ranked and the rank of the first answering section. Writes
``benchmarks/results/query_reading.md``.

Usage:
    python benchmarks/query_reading.py --site cbs=STORE:cbs,cbs-v2 --site stirling=STORE:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace
from pathlib import Path

from fusion import Site, open_site
from machine import describe_machine, write_fragment

from sitetune.config import SearchConfig
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import Query
from sitetune.evaluation.served import served_ranking

RESULT = Path(__file__).resolve().parent / "results" / "query_reading.md"
SETTINGS = {
    "neither": replace(SearchConfig(), correct_spelling=False, abbreviations=False),
    "spelling": replace(SearchConfig(), abbreviations=False),
    "abbreviations": replace(SearchConfig(), correct_spelling=False),
    "both (served)": SearchConfig(),
}


def rankings(site: Site, queries: list[Query], config: SearchConfig) -> dict[str, list[str]]:
    """The served top 10 of each query under ``config`` (each query encoded as that config reads it)."""
    site.searcher.config = config
    return {q.id: served_ranking(site.searcher, q, depth=10) for q in queries}


def first_answer(query: Query, ranking: list[str]) -> str:
    """1-based rank of the first grade-2 section in the top 10, or "–"."""
    return next((str(i) for i, c in enumerate(ranking, 1) if query.relevant.get(c, 0) == 2), "–")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    lines = [
        "## Query spelling and abbreviations: how search reads a question (development and test halves)",
        "",
        f"- Command: `python benchmarks/query_reading.py {' '.join('--site ' + s for s in args.site)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Served search at its defaults with `correct_spelling` and `abbreviations` switched; nDCG@10 /"
        " answers@1; split by a hash of the query id (as `fusion.py`).",
        "",
        "| site | model | half | questions | " + " | ".join(SETTINGS) + " |",
        "|---|---|---|---:|" + "---|" * len(SETTINGS),
    ]
    changed: list[str] = []
    for spec in args.site:
        site = open_site(spec)
        model = Path(site.searcher.model_path).name
        for half, queries in (("dev", site.dev), ("test", site.test), ("all", site.dev + site.test)):
            queries = [q for q in queries if q.relevant]
            runs = {name: rankings(site, queries, cfg) for name, cfg in SETTINGS.items()}
            cells = []
            for name in SETTINGS:
                means, _ = score_rankings({q.id: q.relevant for q in queries}, runs[name], ("ndcg@10", "answers@1"))
                cells.append(f"{means['ndcg@10']:.3f} / {means['answers@1']:.1%}")
            lines.append(f"| {site.name} | `{model}` | {half} | {len(queries)} | " + " | ".join(cells) + " |")
            if half != "all":
                continue
            site.searcher.config = SETTINGS["both (served)"]
            for q in queries:
                off, on = runs["neither"][q.id], runs["both (served)"][q.id]
                before, after = first_answer(q, off), first_answer(q, on)
                if off != on:
                    fixed = site.searcher.normalise_query(q.text)
                    changed.append(f"| {site.name} | `{model}` | {q.id} | {q.text} | {fixed} | {before} | {after} |")
        site.searcher.close()
    lines += [
        "",
        "Questions whose top 10 changed (first answering section's rank, neither → both):",
        "",
        "| site | model | question | as typed | as ranked | neither | both |",
        "|---|---|---|---|---|---:|---:|",
        *changed,
    ]
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
