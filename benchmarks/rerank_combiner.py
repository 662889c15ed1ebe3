"""A learned combiner over cheap features of the fused top candidates, fitted on development questions.

For each question the served fusion's top ``--depth`` candidates get cheap features (fused score and rank,
dense cosine and rank, BM25 score relative to the question's best and its rank, the best sentence's
cosine, whether the question names the candidate's page). A logistic regression (scikit-learn) learns
"answers it" (grade 2) from the pooled development halves of both sites, and the candidates are reordered
by its probability; everything below the depth keeps the fused order. Reported on the test halves, beside
the fused order. An offline measurement: the combiner is not in the served search. Writes
``benchmarks/results/rerank-combiner.md``.

Usage:
    python benchmarks/rerank_combiner.py --site cbs=runs/rerank/cbs-store:cbs,cbs-v2 \
        --site stirling=runs/rerank/stir-store:stirling --cache runs/rerank/cache
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment
from rerank import Site, cache_file, load_cache, open_site, save_cache

from sitetune.config import SearchConfig
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import Query

RESULT = Path(__file__).resolve().parent / "results" / "rerank-combiner.md"
FEATURES = ("fused score", "1/fused rank", "dense cosine", "1/dense rank", "BM25 / best BM25", "1/BM25 rank",
            "best sentence cosine", "page named")


def features(site: Site, query: Query, depth: int) -> tuple[list[int], np.ndarray, list[int]]:
    """(top rows, their feature matrix, the full fused order) for one question."""
    searcher = site.searcher
    searcher.config = replace(SearchConfig(), rerank=False)
    searcher.reranker = None
    vector = site.vectors[query.id]
    read = searcher.read(query.text, vector=vector)
    fused, named = searcher.rank(read), list(read.pages)
    order = [r for r, _ in fused]
    top = order[:depth]
    fused_score = dict(fused)
    dense = dict(searcher.reader.dense(vector, searcher.config.candidates, None))
    dense_rank = {r: i + 1 for i, r in enumerate(searcher.dense_rows(vector))}
    bm25 = searcher._bm25_scores(query.text)
    bm25_rank = {r: i + 1 for i, r in enumerate(searcher.bm25_rows(query.text))}
    best_bm25 = float(bm25.max()) if bm25.size and bm25.max() > 0 else 1.0
    chunks = searcher.reader.chunks
    sentence = np.zeros(len(top), dtype=np.float32)
    for i, r in enumerate(top):
        docs = searcher.sentences.documents(chunks[r].page_name, chunks[r].section_title, chunks[r].text)
        if docs:
            sentence[i] = float((searcher.sentences.vectors(docs) @ vector).max())
    named_pages = set(named)
    rows = []
    for i, r in enumerate(top):
        rows.append([fused_score[r], 1.0 / (i + 1), dense.get(r, 0.0), 1.0 / dense_rank.get(r, 1000),
                     float(bm25[r]) / best_bm25, 1.0 / bm25_rank.get(r, 1000), sentence[i],
                     float(bool(named_pages & set(chunks[r].pages)))])
    return top, np.asarray(rows, dtype=np.float64), order


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--depth", type=int, default=10, help="fused candidates reordered")
    parser.add_argument("--cache", type=Path, default=None, help="benchmarks/rerank.py's cache folder")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    sites = [open_site(spec, []) for spec in args.site]
    for site in sites:
        load_cache(site, cache_file(args.cache, site.name))
    data = {}
    for site in sites:
        for q in site.dev + site.test:
            data[(site.name, q.id)] = features(site, q, args.depth)
        save_cache(site, cache_file(args.cache, site.name))
    x_dev, y_dev = [], []
    for site in sites:
        for q in site.dev:
            top, x, _ = data[(site.name, q.id)]
            x_dev.append(x)
            y_dev += [1 if q.relevant.get(site.searcher.reader.chunks[r].chunk_id, 0) >= 2 else 0 for r in top]
    scaler = StandardScaler().fit(np.vstack(x_dev))
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    model.fit(scaler.transform(np.vstack(x_dev)), np.asarray(y_dev))

    def scores(site: Site, queries: list[Query], combined: bool) -> tuple[float, float]:
        chunks = site.searcher.reader.chunks
        rankings = {}
        for q in queries:
            top, x, order = data[(site.name, q.id)]
            if combined and len(top):
                p = model.predict_proba(scaler.transform(x))[:, 1]
                top = [top[i] for i in np.argsort(-p, kind="stable")]
            ids = [chunks[r].chunk_id for r in top + order[len(top):]]
            rankings[q.id] = [c for c in ids if c not in q.exclude][:10]
        means, _ = score_rankings({q.id: q.relevant for q in queries}, rankings, ("ndcg@10", "answers@1"))
        return means["ndcg@10"], means["answers@1"]

    lines = [
        "## A learned combiner over cheap features (offline; not served)",
        "",
        f"- Command: `python benchmarks/rerank_combiner.py {' '.join(sys.argv[1:])}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        f"- Logistic regression (balanced classes, C=1) on {len(y_dev)} candidates of the development"
        f" questions of both sites pooled ({sum(y_dev)} graded 2), reordering the fused top {args.depth}."
        " Features: " + ", ".join(FEATURES) + ".",
        "- Weights (standardised features): " + ", ".join(
            f"{name} {w:+.2f}" for name, w in zip(FEATURES, model.coef_[0], strict=True)),
        "",
        "| order | " + " | ".join(f"{s.name} {h} nDCG@10 | {s.name} {h} answers@1"
                                   for s in sites for h in ("dev", "test")) + " |",
        "|---" * (1 + 4 * len(sites)) + "|",
    ]
    for label, combined in (("fused (served)", False), ("combiner", True)):
        cells = []
        for site in sites:
            for queries in (site.dev, site.test):
                n, a = scores(site, queries, combined)
                cells += [f"{n:.3f}", f"{a:.1%}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for site in sites:
        site.searcher.close()
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
