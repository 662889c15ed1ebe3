"""Tune hybrid search (dense + BM25 fusion, programme boost) for one store on a judged question file.

Scores the full search path (`Searcher.rank`: dense, BM25, weighted RRF, programme boost) for a grid of
SearchConfig values, query vectors encoded once. Reports nDCG@10 and the share of questions whose first
result answers them (a grade-2 chunk), and writes ``benchmarks/results/fusion.md``.

Usage:
    sitetune index --corpus ../shared/data/cbs_graduate_programs.csv --model runs/cbs-model --store runs/cbs-store
    python benchmarks/fusion.py --store runs/cbs-store [--queries cbs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from dataclasses import replace
from pathlib import Path

from machine import describe_machine

from sitetune.config import EncoderConfig, SearchConfig
from sitetune.evaluation.metrics import score_rankings
from sitetune.evaluation.querysets import load_query_file, resolve_query_file
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "fusion.md"


def first_answers(judgments: dict[str, dict[str, int]], rankings: dict[str, list[str]]) -> float:
    """Share of queries whose first result is graded 2 ("answers it")."""
    hits = [1.0 if r and judgments[q].get(r[0], 0) >= 2 else 0.0 for q, r in rankings.items()]
    return sum(hits) / len(hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--queries", default="cbs")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    searcher = Searcher.open(args.store, EncoderConfig())
    corpus_chunks = {c.chunk_id for c in searcher.reader.chunks}
    from sitetune.corpus import Corpus

    query_file = resolve_query_file(args.queries)
    queries = load_query_file(query_file, Corpus.from_records(c.record() for c in searcher.reader.chunks))
    judgments = queries.judgments()
    vectors = searcher.encoder.encode([searcher.encoder.info.query(q.text) for q in queries.queries])
    default = searcher.config
    ids = [c.chunk_id for c in searcher.reader.chunks]
    assert corpus_chunks == set(ids)

    def evaluate(config: SearchConfig) -> tuple[float, float]:
        searcher.config = config
        rankings = {}
        for q, v in zip(queries.queries, vectors, strict=True):
            fused, _ = searcher.rank(q.text, query_vector=v)
            rankings[q.id] = [ids[row] for row, _ in fused[:10]]
        means, _ = score_rankings(judgments, rankings, ("ndcg@10",))
        return means["ndcg@10"], first_answers(judgments, rankings)

    rows: list[tuple[str, float, float]] = []
    rows.append(("dense only", *evaluate(replace(default, bm25_weight=0.0, program_boost=0.0))))
    rows.append(("BM25 only", *evaluate(replace(default, dense_weight=0.0, program_boost=0.0))))
    rows.append(("default " + f"(rrf_k {default.rrf_k}, bm25 {default.bm25_weight}, boost {default.program_boost})",
                 *evaluate(default)))
    grid = []
    for rrf_k, bm25_w, boost in itertools.product((5, 20, 60), (0.25, 0.5, 0.75, 1.0), (0.0, 0.05, 0.1)):
        cfg = replace(default, rrf_k=rrf_k, bm25_weight=bm25_w, program_boost=boost)
        grid.append((f"rrf_k {rrf_k}, bm25 {bm25_w}, boost {boost}", *evaluate(cfg)))
    grid.sort(key=lambda r: -r[1])
    searcher.close()

    lines = [
        "## Hybrid search tuning (full search path)",
        "",
        f"- Command: `python benchmarks/fusion.py --store {args.store} --queries {args.queries}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        f"- Store model: `{searcher.model_path}`; {len(ids)} chunks; {len(queries.queries)} questions from "
        f"`{query_file.name}`",
        "",
        "| configuration | nDCG@10 | first result answers |",
        "|---|---:|---:|",
        *[f"| {name} | {n:.3f} | {a:.1%} |" for name, n, a in rows],
        "",
        "Grid (best 8 of 36):",
        "",
        "| configuration | nDCG@10 | first result answers |",
        "|---|---:|---:|",
        *[f"| {name} | {n:.3f} | {a:.1%} |" for name, n, a in grid[:8]],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
