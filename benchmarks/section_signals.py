"""Choose the signpost, scope and testimonial penalties on development questions of two sites; report them on the rest.

The served search subtracts ``signpost_penalty`` times a section's signpost probability, ``testimonial_penalty``
from a section telling someone's own story and, when the question names no programme, ``scope_penalty`` from a
section found only on one programme's page
(``sitetune.config.SearchConfig``; the signals are computed at index time, ``sitetune.sectionkind``). Each
setting is scored on the development half of each site's questions (``split_queries``) and the one with the
best mean over sites of answers@1 + nDCG@10 is chosen; every row is reported on the test half too. The
"signpost first" column counts answerable questions with an answering section in the top 20 whose first
result is a signpost (probability ≥ 0.5) that does not answer. Writes ``benchmarks/results/section_signals.md``.

Usage:
    python benchmarks/section_signals.py --site cbs=runs/cbs-store:cbs,cbs-v2 --site stirling=runs/stir-store:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from dataclasses import replace
from pathlib import Path

from fusion import Site, open_site
from machine import describe_machine, write_fragment

from sitetune.config import SearchConfig
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import Query
from sitetune.evaluation.served import served_ranking

RESULT = Path(__file__).resolve().parent / "results" / "section_signals.md"
SIGNPOST = (0.0, 0.05, 0.1, 0.2)
SCOPE = (0.0, 0.06)
TESTIMONIAL = (0.0, 0.03, 0.06, 0.1)


def signpost_first(site: Site, query: Query, ranking: list[str]) -> bool:
    """Whether an answerable question's first result is a non-answering signpost, an answer being in the top 20."""
    answering = {c for c, grade in query.relevant.items() if grade >= 2}
    if not ranking or not answering or ranking[0] in answering or not answering & set(ranking[:20]):
        return False
    return site.searcher.signals.signpost[site.searcher.reader.row_of[ranking[0]]] >= 0.5


def score(site: Site, queries: list[Query], config: SearchConfig) -> tuple[float, float, int]:
    """(nDCG@10, answers@1, signpost-first count) of the served ranking under ``config``."""
    site.searcher.config = config
    rankings = {q.id: served_ranking(site.searcher, q, site.vectors[q.id], depth=20) for q in queries}
    means, _ = score_rankings({q.id: q.relevant for q in queries},
                              {k: v[:10] for k, v in rankings.items()}, ("ndcg@10", "answers@1"))
    firsts = sum(signpost_first(site, q, rankings[q.id]) for q in queries)
    return means["ndcg@10"], means["answers@1"], firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=STORE:set1[,set2]")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    sites = [open_site(spec) for spec in args.site]
    default = SearchConfig()
    grid = [replace(default, signpost_penalty=a, scope_penalty=b, testimonial_penalty=c)
            for a, b, c in itertools.product(SIGNPOST, SCOPE, TESTIMONIAL)]
    results = []
    for cfg in grid:
        dev = [score(s, s.dev, cfg) for s in sites]
        results.append((sum(n + a for n, a, _ in dev) / len(sites), cfg, dev))
        print(f"signpost {cfg.signpost_penalty} scope {cfg.scope_penalty} testimonial {cfg.testimonial_penalty}: " +
              "; ".join(f"{s.name} {n:.3f}/{a:.1%}/{f}" for s, (n, a, f) in zip(sites, dev, strict=True)), flush=True)
    best = max(results, key=lambda r: r[0])[1]
    def key(cfg: SearchConfig) -> tuple[float, float, float]:
        return cfg.signpost_penalty, cfg.scope_penalty, cfg.testimonial_penalty

    a, b, c = key(best)
    shown = {(0.0, 0.0, 0.0), (a, b, c), (0.0, 0.0, c), (a, b, 0.0)}
    head = " | ".join(f"{s.name} dev nDCG@10 / answers@1 / signpost first | {s.name} test" for s in sites)
    rows = []
    for _mean, cfg, dev in results:
        if key(cfg) not in shown:
            continue
        test = [score(s, s.test, cfg) for s in sites]
        cells = " | ".join(f"{d[0]:.3f} / {d[1]:.1%} / {d[2]} | {t[0]:.3f} / {t[1]:.1%} / {t[2]}"
                           for d, t in zip(dev, test, strict=True))
        mark = " (chosen)" if cfg == best else ""
        rows.append(f"| {cfg.signpost_penalty} | {cfg.scope_penalty} | {cfg.testimonial_penalty}{mark} | {cells} |")
    write_fragment(args.out, [
        "## Signpost, scope and testimonial penalties (chosen on development halves, reported on test halves)",
        "",
        "- Command: `python benchmarks/section_signals.py " + " ".join("--site " + s for s in args.site) + "`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        f"- Grid: signpost penalty {SIGNPOST} x scope penalty {SCOPE} x testimonial penalty {TESTIMONIAL};"
        " chosen by the mean over sites of dev answers@1 + nDCG@10. Shown: all off, the chosen setting,"
        " testimonials alone and the chosen setting without them.",
        "- Questions per half: " + "; ".join(f"{s.name} dev {len(s.dev)}, test {len(s.test)}" for s in sites),
        "",
        f"| signpost penalty | scope penalty | testimonial penalty | {head} |",
        "|---:|---:|---:|" + "---|---|" * len(sites),
        *rows,
    ])


if __name__ == "__main__":
    main()
