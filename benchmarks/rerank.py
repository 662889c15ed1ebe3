"""Second stages side by side on two real sites: fused order, sentence max-sim, late interaction, cross-encoder.

Each site's question sets are split by a hash of the query id (``split_queries``). For every second stage a
small grid (its weight in the fusion and how many fused candidates it reads) is scored on the development
half; the best setting per stage (mean over sites of nDCG@10 + answers@1) is reported on the test half and
on the whole set. Every ranking is ``Searcher.rank`` (``sitetune.evaluation.served``), the function search
and the HTTP API call; a stage's scores are cached per (question, section) so the grid costs one scoring
pass. Latency is the stage's own cost per query at the chosen depth, cold (nothing cached) and warm.
Writes ``benchmarks/results/rerank.md``.

Usage:
    python benchmarks/rerank.py --site cbs=runs/cbs-store:cbs,cbs-v2 --site stirling=runs/stir-store:stirling
    (a store's model folder with a ``reranker/`` adds the cross-encoder rows)
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import pickle
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.config import RerankerKind, SearchConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import Query, load_query_file, split_queries
from sitetune.evaluation.served import query_vectors, served_ranking
from sitetune.rerank import Reranker, has_reranker, load_reranker
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "rerank.md"
DEPTHS = (5, 10, 20, 30)
WEIGHTS = (0.5, 1.0, 2.0, 4.0)


class CachedReranker:
    """A reranker whose scores are remembered per (question, document), so a grid scores each pair once."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str], float] = {}

    @property
    def kind(self) -> RerankerKind:
        return self.inner.kind

    def scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        missing = [d for d in dict.fromkeys(documents) if (query, d) not in self.cache]
        if missing:
            for d, s in zip(missing, self.inner.scores(query, missing), strict=True):
                self.cache[(query, d)] = float(s)
        return np.asarray([self.cache[(query, d)] for d in documents], dtype=np.float32)


@dataclass
class Site:
    """One store and its questions, split into development and test halves."""

    name: str
    searcher: Searcher
    dev: list[Query]
    test: list[Query]
    vectors: dict[str, np.ndarray]
    stages: dict[str, CachedReranker]


def cache_file(cache: Path | None, site: str) -> Path | None:
    return None if cache is None else cache / f"{site}.pkl"


def load_cache(site: Site, path: Path | None) -> None:
    """Reuse scores and vectors a previous run computed for this site (same store, same models)."""
    if path is None or not path.is_file():
        return
    with path.open("rb") as fh:
        saved = pickle.load(fh)
    site.searcher.sentences._cache.update(saved.get("sentences", {}))
    for name, stage in site.stages.items():
        stage.cache.update(saved.get("scores", {}).get(name, {}))
        inner_cache = getattr(stage.inner, "_cache", None)
        if isinstance(inner_cache, dict):
            inner_cache.update(saved.get("inner", {}).get(name, {}))


def save_cache(site: Site, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {"sentences": dict(site.searcher.sentences._cache),
             "scores": {name: dict(stage.cache) for name, stage in site.stages.items()},
             "inner": {name: dict(getattr(stage.inner, "_cache", {})) for name, stage in site.stages.items()}}
    with path.open("wb") as fh:
        pickle.dump(saved, fh)


def open_site(spec: str, kinds: Sequence[RerankerKind]) -> Site:
    """``name=STORE:set1,set2`` → an opened store (reranking off), its questions split, its rerankers."""
    name, rest = spec.split("=", 1)
    store, sets = rest.rsplit(":", 1)
    searcher = Searcher.open(store, config=replace(SearchConfig(), rerank=False))
    corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
    dev: list[Query] = []
    test: list[Query] = []
    for query_file in sets.split(","):
        qs = load_query_file(query_file, corpus)
        d, t = split_queries([replace(q, id=f"{query_file}/{q.id}") for q in qs.queries])
        dev += d
        test += t
    vectors = dict(zip([q.id for q in dev + test], query_vectors(searcher, dev + test), strict=True))
    stages = {}
    for kind in kinds:
        if kind is RerankerKind.CROSS_ENCODER and not has_reranker(searcher.model_path):
            continue
        reranker = load_reranker(searcher.model_path, kind)
        assert reranker is not None
        stages[str(kind)] = CachedReranker(reranker)
    return Site(name, searcher, dev, test, vectors, stages)


def score(site: Site, queries: list[Query], config: SearchConfig, stage: str | None) -> tuple[float, float]:
    """(nDCG@10, answers@1) of the served ranking under ``config`` with reranker ``stage`` (or none)."""
    site.searcher.config = config
    site.searcher.reranker = site.stages[stage] if stage else None
    rankings = {q.id: served_ranking(site.searcher, q, site.vectors[q.id], depth=10) for q in queries}
    means, _ = score_rankings({q.id: q.relevant for q in queries}, rankings, ("ndcg@10", "answers@1"))
    return means["ndcg@10"], means["answers@1"]


def candidates(stages: Sequence[str], depths: Sequence[int] = DEPTHS) -> list[tuple[str, str | None, SearchConfig]]:
    """(stage family, reranker, config) for every setting tried."""
    # The plain fused order: no second stage at all (the served default has the sentence stage on).
    base = replace(SearchConfig(), rerank=False, sentence_weight=0.0)
    out: list[tuple[str, str | None, SearchConfig]] = [("fused order", None, base)]
    for w, depth in itertools.product(WEIGHTS, depths):
        out.append(("sentence max-sim", None, replace(base, sentence_weight=w, sentence_depth=depth)))
    for stage in stages:
        for w, depth in itertools.product((*WEIGHTS, 100.0), depths):
            cfg = replace(base, rerank=True, rerank_weight=w, rerank_depth=depth)
            out.append((stage, stage, cfg))
    return out


def label(config: SearchConfig, stage: str | None) -> str:
    if stage:
        return f"weight {config.rerank_weight:g}, top {config.rerank_depth}"
    if config.sentence_weight:
        return f"weight {config.sentence_weight:g}, top {config.sentence_depth}"
    return "-"


def latency(site: Site, stage: str | None, config: SearchConfig, queries: list[Query]) -> tuple[float, float]:
    """Median ms of the stage's own scoring per query: cold (nothing cached) and warm (repeated)."""
    cold: list[float] = []
    warm: list[float] = []
    for q in queries[:20]:
        site.searcher.config = replace(SearchConfig(), rerank=False, sentence_weight=0.0)
        site.searcher.reranker = None
        fused = site.searcher.rank(site.searcher.read(q.text, vector=site.vectors[q.id]))
        if stage:
            rows = [r for r, _ in fused[: config.rerank_depth]]
            inner = site.stages[stage].inner
            for bucket in (cold, warm):
                if bucket is cold and hasattr(inner, "_cache"):
                    inner._cache.clear()
                t = time.perf_counter()
                site.searcher.reranker = inner
                site.searcher.rerank_scores(q.text, rows)
                bucket.append((time.perf_counter() - t) * 1000)
        else:
            rows = [r for r, _ in fused[: config.sentence_depth]]
            for bucket in (cold, warm):
                if bucket is cold:
                    site.searcher.sentences._cache.clear()
                t = time.perf_counter()
                site.searcher.sentence_order(site.vectors[q.id], rows)
                bucket.append((time.perf_counter() - t) * 1000)
    return statistics.median(cold), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--kind", action="append", type=RerankerKind, default=None,
                        help="rerankers to measure (default: late-interaction and cross-encoder)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--json", type=Path, default=None, help="also write every dev score here")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep computed sentence vectors and stage scores here between runs (a folder)")
    parser.add_argument("--depths", default=",".join(map(str, DEPTHS)), help="candidate depths tried, comma-separated")
    args = parser.parse_args()
    kinds = args.kind or [RerankerKind.LATE_INTERACTION, RerankerKind.CROSS_ENCODER]

    sites = [open_site(spec, kinds) for spec in args.site]
    for site in sites:
        load_cache(site, cache_file(args.cache, site.name))
    stages = sorted(set.intersection(*(set(s.stages) for s in sites)))
    tried = candidates(stages, [int(d) for d in args.depths.split(",")])
    dev: dict[str, float] = {}
    for family, stage, cfg in tried:
        per_site = [score(site, site.dev, cfg, stage) for site in sites]
        key = f"{family}: {label(cfg, stage)}"
        dev[key] = float(np.mean([n + a for n, a in per_site]))
        print(f"dev {dev[key]:.3f}  {key}  " + "  ".join(f"{n:.3f}/{a:.1%}" for n, a in per_site), flush=True)
    best: dict[str, tuple[str | None, SearchConfig]] = {}
    for family, stage, cfg in tried:
        key = f"{family}: {label(cfg, stage)}"
        if family not in best or dev[key] > dev[f"{family}: {label(best[family][1], best[family][0])}"]:
            best[family] = (stage, cfg)
    if args.json:
        args.json.write_text(json.dumps(dev, indent=1))
    for site in sites:
        save_cache(site, cache_file(args.cache, site.name))

    head = " | ".join(f"{s.name} {half} nDCG@10 | {s.name} {half} answers@1"
                      for s in sites for half in ("dev", "test", "all"))
    lines = [
        "## Second stages: fused order, sentence max-sim, late interaction, trained cross-encoder",
        "",
        f"- Command: `python benchmarks/rerank.py {' '.join(sys.argv[1:])}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Split: a hash of each query id; " + "; ".join(
            f"{s.name}: {len(s.dev)} development, {len(s.test)} test questions "
            f"(model `{Path(s.searcher.model_path).name}`)" for s in sites),
        f"- {len(tried)} settings scored on the development half (mean over sites of nDCG@10 + answers@1); each"
        " stage's best setting is shown on dev, test and all questions. A stage's order is one more voter in"
        " the weighted RRF of the served search (weight 100: the stage's order alone decides its top N).",
        "",
        f"| second stage | setting | {head} |",
        "|---" * (2 + 6 * len(sites)) + "|",
    ]
    for family, (stage, cfg) in best.items():
        cells = []
        for site in sites:
            for queries in (site.dev, site.test, site.dev + site.test):
                n, a = score(site, queries, cfg, stage)
                cells += [f"{n:.3f}", f"{a:.1%}"]
        lines.append(f"| {family} | {label(cfg, stage)} | " + " | ".join(cells) + " |")
    for site in sites:  # before the latency runs, which empty the caches to time cold scoring
        save_cache(site, cache_file(args.cache, site.name))
    lines += ["", "Cost of the stage alone per query (median ms over 20 questions; cold: nothing cached):", "",
              "| second stage | setting | " + " | ".join(f"{s.name} cold | {s.name} warm" for s in sites) + " |",
              "|---" * (2 + 2 * len(sites)) + "|"]
    for family, (stage, cfg) in best.items():
        if family.startswith("fused"):
            continue
        cells = []
        for site in sites:
            c, w = latency(site, stage, cfg, site.test)
            cells += [f"{c:.0f}", f"{w:.0f}"]
        lines.append(f"| {family} | {label(cfg, stage)} | " + " | ".join(cells) + " |")
    for site in sites:
        site.searcher.close()
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
