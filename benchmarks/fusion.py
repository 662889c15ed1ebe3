"""Choose the served search settings on development questions of several sites; report them on the rest.

Each site's question sets are split by a hash of the query id (``split_queries``): settings are chosen by the
mean over sites of answers@1 + nDCG@10 on the development half, and every row is reported on the test half,
so no figure here is measured on the questions that chose it. Rankings come from
``sitetune.evaluation.served`` (the searcher ``sitetune search`` and the HTTP API use), query vectors encoded
once per store. Writes ``benchmarks/results/fusion.md``.

Usage:
    sitetune index --corpus CORPUS --model MODEL --store STORE      # one store per site (and model)
    python benchmarks/fusion.py --site cbs=runs/cbs-store:cbs,cbs-v2 --site stirling=runs/stir-store:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.config import SearchConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import Query, load_query_file, split_queries
from sitetune.evaluation.served import query_vectors, served_ranking
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "fusion.md"


@dataclass
class Site:
    """One store and its questions, split into development and test halves."""

    name: str
    searcher: Searcher
    dev: list[Query]
    test: list[Query]
    vectors: dict[str, np.ndarray]


def open_site(spec: str) -> Site:
    """``name=STORE:set1,set2`` → an opened store with its query sets loaded and split."""
    name, rest = spec.split("=", 1)
    store, sets = rest.rsplit(":", 1)
    searcher = Searcher.open(store)
    corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
    dev: list[Query] = []
    test: list[Query] = []
    for query_file in sets.split(","):
        qs = load_query_file(query_file, corpus)
        d, t = split_queries([replace(q, id=f"{query_file}/{q.id}") for q in qs.queries])
        dev += d
        test += t
    vectors = dict(zip([q.id for q in dev + test], query_vectors(searcher, dev + test), strict=True))
    return Site(name, searcher, dev, test, vectors)


def score(site: Site, queries: list[Query], config: SearchConfig) -> tuple[float, float]:
    """(nDCG@10, answers@1) of the served ranking under ``config``."""
    site.searcher.config = config
    rankings = {q.id: served_ranking(site.searcher, q, site.vectors[q.id], depth=10) for q in queries}
    means, _ = score_rankings({q.id: q.relevant for q in queries}, rankings, ("ndcg@10", "answers@1"))
    return means["ndcg@10"], means["answers@1"]


def grid(default: SearchConfig) -> list[tuple[str, SearchConfig]]:
    """The configurations tried: fusion constants, programme boost, the sentence stage's weight and depth."""
    out = []
    for rrf_k, bm25_w, boost, sent_w, depth in itertools.product(
        (5, 20, 60), (0.5, 0.75, 1.0), (0.0, 0.05), (0.0, 0.5, 1.0, 1.5), (20, 40)
    ):
        if sent_w == 0.0 and depth != 20:
            continue  # depth means nothing without the stage
        cfg = replace(default, rrf_k=rrf_k, bm25_weight=bm25_w, program_boost=boost, sentence_weight=sent_w,
                      sentence_depth=depth)
        out.append((f"rrf_k {rrf_k}, bm25 {bm25_w}, boost {boost}, sentence {sent_w}@{depth}", cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--quick", action="store_true", help="only the named rows, no grid")
    parser.add_argument("--intent-weights", default=None,
                        help="comma-separated: score the served settings at these intent_weight values on both "
                             "halves instead of the grid (writes results/fusion_intent.md)")
    args = parser.parse_args()

    sites = [open_site(spec) for spec in args.site]
    if args.intent_weights:
        out = args.out if args.out != RESULT else RESULT.with_name("fusion_intent.md")
        intent_table(sites, [float(w) for w in args.intent_weights.split(",")], args, out)
        return
    default = SearchConfig()
    named = [
        ("dense only", replace(default, bm25_weight=0.0, program_boost=0.0, sentence_weight=0.0)),
        ("BM25 only", replace(default, dense_weight=0.0, program_boost=0.0, sentence_weight=0.0)),
        ("default (served)", default),
    ]
    tried = [] if args.quick else grid(default)
    dev_scores = {}
    for label, cfg in tried:
        per_site = [score(site, site.dev, cfg) for site in sites]
        dev_scores[label] = float(np.mean([n + a for n, a in per_site]))
        print(f"dev {dev_scores[label]:.3f}  {label}", flush=True)
    chosen = sorted(tried, key=lambda lc: -dev_scores[lc[0]])[:3]
    rows = named + [(f"best on dev #{i + 1}: {label}", cfg) for i, (label, cfg) in enumerate(chosen)]

    header = "| configuration | " + " | ".join(f"{s.name} nDCG@10 | {s.name} answers@1" for s in sites) + " |"
    lines = [
        "## Served search settings chosen on development questions, reported on test questions",
        "",
        f"- Command: `python benchmarks/fusion.py {' '.join('--site ' + s for s in args.site)}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Split: a hash of each query id; " + "; ".join(
            f"{s.name}: {len(s.dev)} development, {len(s.test)} test questions "
            f"(model `{Path(s.searcher.model_path).name}`)" for s in sites),
        f"- {len(tried)} configurations scored on the development half (mean over sites of nDCG@10 + answers@1);"
        " the table shows the test half only.",
        "",
        header,
        "|---" * (1 + 2 * len(sites)) + "|",
    ]
    for label, cfg in rows:
        cells = []
        for site in sites:
            n, a = score(site, site.test, cfg)
            cells += [f"{n:.3f}", f"{a:.1%}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for site in sites:
        site.searcher.close()
    write_fragment(args.out, lines)


def intent_table(sites: list[Site], weights: list[float], args: argparse.Namespace, out: Path) -> None:
    """Each ``intent_weight`` on the development and test halves; the one the development half picks."""
    default = SearchConfig()
    cells: dict[float, list[tuple[float, float]]] = {}
    dev_score: dict[float, float] = {}
    for w in weights:
        cfg = replace(default, intent_weight=w)
        cells[w] = [score(site, half, cfg) for site in sites for half in (site.dev, site.test)]
        dev_score[w] = float(np.mean([n + a for n, a in cells[w][::2]]))
        print(f"intent_weight {w}: dev {dev_score[w]:.3f}", flush=True)
    best = max(weights, key=lambda w: dev_score[w])
    templates = ", ".join(f"{s.name} {len(s.searcher.template_pages)}" for s in sites)
    header = "| intent_weight | dev score | " + " | ".join(
        f"{s.name} {h} nDCG@10 | {s.name} {h} answers@1" for s in sites for h in ("dev", "test")) + " |"
    lines = [
        "## A named programme page's sections ranked by the rest of the question",
        "",
        f"- Command: `python benchmarks/fusion.py {' '.join('--site ' + s for s in args.site)} "
        f"--intent-weights {args.intent_weights}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Split: a hash of each query id; " + "; ".join(
            f"{s.name}: {len(s.dev)} development, {len(s.test)} test questions "
            f"(model `{Path(s.searcher.model_path).name}`)" for s in sites),
        f"- Template pages found (`sitetune.sitevocab.template_pages`): {templates}",
        "- Dev score: mean over sites of nDCG@10 + answers@1 on the development half; the highest is chosen "
        f"(**{best}**, served default {default.intent_weight}).",
        "",
        header,
        "|---" * (2 + 4 * len(sites)) + "|",
    ]
    for w in weights:
        mark = " (chosen)" if w == best else ""
        row = [f"{n:.3f} | {a:.1%}" for n, a in cells[w]]
        lines.append(f"| {w}{mark} | {dev_score[w]:.3f} | " + " | ".join(row) + " |")
    for site in sites:
        site.searcher.close()
    write_fragment(out, lines)


if __name__ == "__main__":
    main()
