"""Approximate search for the embedded store: faiss vs hnswlib vs usearch HNSW, and where exact search stops.

Vectors: synthetic unit 384-d vectors with the structure of sentence embeddings (see :func:`clustered`):
a shared direction every vector leans on, topics of Zipf-distributed sizes (~100 vectors each on average)
and per-vector noise, so that vectors of one topic have cosine ~0.7 and unrelated ones ~0.1. Queries are
new draws from the same topics with more noise (cosine ~0.5-0.6 to their nearest stored vectors, as a
question to its answers). Recall@10 is against exact search.

For each library: HNSW with M=16 and efConstruction=128, built with every core (``--threads``), then
searched one query at a time on one thread (as a serving process does) at several efSearch values;
build seconds, index bytes, p50/p99 ms and recall@10 per row. Exact numpy search (what the store does
now) is timed at several sizes to choose the size above which the store builds an ANN index.

Writes ``benchmarks/results/ann.md``.

Usage:
    .venv/bin/python benchmarks/ann.py --sizes 100000 --libraries faiss,hnswlib,usearch
    .venv/bin/python benchmarks/ann.py --sizes 1000000 --libraries usearch --out benchmarks/results/ann-1m.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from machine import describe_machine

# One compute thread for numpy unless told otherwise (single-query latency on a shared machine).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DIM = 384
M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = (16, 32, 64, 128, 256, 512, 1024, 2048)


@dataclass
class Topics:
    """What the vectors of one data set are drawn around (shared by its stored vectors and its queries)."""

    centers: np.ndarray
    common: np.ndarray
    bases: np.ndarray | None  # (pool, intrinsic, DIM) orthonormal rows, or None for isotropic noise


def make_topics(n: int, rng: np.random.Generator, intrinsic: int | None) -> Topics:
    centers = rng.standard_normal((max(10, n // 100), DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    common = rng.standard_normal(DIM, dtype=np.float32)
    common /= np.linalg.norm(common)
    bases = None
    if intrinsic:
        bases = np.stack([np.linalg.qr(rng.standard_normal((DIM, intrinsic)))[0].T for _ in range(64)])
        bases = bases.astype(np.float32)
    return Topics(centers, common, bases)


def clustered(n: int, rng: np.random.Generator, *, noise: float = 0.55, topics: Topics | None = None,
              intrinsic: int | None = None) -> tuple[np.ndarray, Topics]:
    """``n`` unit vectors drawn around topic centres; returns them and the topics (to draw queries from).

    Each vector is ``0.35 * common + 0.75 * centre + noise * g``, normalised; topic sizes follow a Zipf law
    (a few large topics, many small ones), like a site's boilerplate and its long tail of pages. With
    ``intrinsic=None`` g is a random unit vector of all 384 dimensions (isotropic: the hardest case, every
    topic a ball of near-equidistant points); with ``intrinsic=d``, 90% of g's energy lies in a
    d-dimensional subspace of the topic (one of 64 shared ones) and 10% is isotropic, as text embeddings
    vary along few directions within a topic (their local intrinsic dimension is low).
    """
    topics = topics or make_topics(n, rng, intrinsic)
    centers, common = topics.centers, topics.common
    weights = 1.0 / np.arange(1, len(centers) + 1) ** 0.8
    topic = rng.choice(len(centers), size=n, p=weights / weights.sum())
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        g = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        if topics.bases is not None:
            which = topic[start:stop] % len(topics.bases)
            local = np.empty_like(g)
            for b, basis in enumerate(topics.bases):  # (d, DIM) orthonormal rows
                rows = np.flatnonzero(which == b)
                local[rows] = rng.standard_normal((len(rows), basis.shape[0]), dtype=np.float32) @ basis
            local /= np.linalg.norm(local, axis=1, keepdims=True)
            g = np.sqrt(0.9) * local + np.sqrt(0.1) * g
        block = 0.35 * common + 0.75 * centers[topic[start:stop]] + noise * g
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, topics


def exact_top10(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact top-10 ids for each query (blocked matrix product)."""
    out = np.empty((len(q), 10), dtype=np.int64)
    for start in range(0, len(q), 64):
        s = q[start : start + 64] @ x.T
        top = np.argpartition(-s, 9, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        out[start : start + 64] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))


def timed(search: Callable[[np.ndarray], np.ndarray], q: np.ndarray) -> tuple[float, float, np.ndarray]:
    for v in q[:5]:
        search(v)
    lat, found = [], []
    for v in q:
        t0 = time.perf_counter()
        ids = search(v)
        lat.append((time.perf_counter() - t0) * 1e3)
        found.append(np.asarray(ids, dtype=np.int64)[:10])
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), np.stack(found)


def exact_numpy(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def search(v: np.ndarray) -> np.ndarray:
        s = x @ v
        top = np.argpartition(-s, 9)[:10]
        return top[np.argsort(-s[top])]

    return search


def build_faiss(x: np.ndarray, threads: int, folder: Path) -> tuple[Callable[[np.ndarray, int], np.ndarray], int]:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(x)
    faiss.write_index(index, str(folder / "faiss.index"))
    faiss.omp_set_num_threads(1)

    def search(v: np.ndarray, ef: int) -> np.ndarray:
        index.hnsw.efSearch = ef
        return index.search(v[None, :], 10)[1][0]

    return search, (folder / "faiss.index").stat().st_size


def build_hnswlib(x: np.ndarray, threads: int, folder: Path) -> tuple[Callable[[np.ndarray, int], np.ndarray], int]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(x), ef_construction=EF_CONSTRUCTION, M=M)
    index.add_items(x, np.arange(len(x)), num_threads=threads)
    index.save_index(str(folder / "hnswlib.bin"))

    def search(v: np.ndarray, ef: int) -> np.ndarray:
        index.set_ef(max(ef, 10))
        return index.knn_query(v, k=10, num_threads=1)[0][0]

    return search, (folder / "hnswlib.bin").stat().st_size


def build_usearch(x: np.ndarray, threads: int, folder: Path, dtype: str = "f32") -> tuple[
        Callable[[np.ndarray, int], np.ndarray], int]:
    from usearch.index import Index

    index = Index(ndim=DIM, metric="ip", dtype=dtype, connectivity=M, expansion_add=EF_CONSTRUCTION)
    index.add(np.arange(len(x)), x, threads=threads)
    index.save(str(folder / f"usearch-{dtype}.usearch"))

    def search(v: np.ndarray, ef: int) -> np.ndarray:
        index.expansion_search = ef
        return index.search(v, 10, threads=1).keys

    return search, (folder / f"usearch-{dtype}.usearch").stat().st_size


def build_store(x: np.ndarray, threads: int, folder: Path) -> tuple[Callable[[np.ndarray, int], np.ndarray], int]:
    """What the store does: :class:`sitetune.index.ann.AnnIndex` (faiss HNSW plus its recall check).

    The check gets 500 other queries drawn like the measured ones (the store gives it encoded section
    titles: queries from the distribution it will serve); what the harsher default check (noisy copies
    of stored vectors) would say at the chosen efSearch is printed too.
    """
    from sitetune.index.ann import AnnIndex, _exact_top, _recall, query_like

    ann = AnnIndex.build(x, queries=CHECK_QUERIES[0], threads=threads)
    noisy = query_like(x, 300, seed=1)
    found = np.stack([[r for r, _ in ann.search(v, 10)] for v in noisy])
    NOISY_RECALL[0] = _recall(found, _exact_top(x, noisy, 10))
    ann.save(folder / "hnsw.faiss")
    ann = AnnIndex.load(folder / "hnsw.faiss", ann.info)  # memory-mapped, as a store opens it
    print(f"store index: {ann.info}", flush=True)
    CHOSEN[0] = ann.info.ef_search

    def search(v: np.ndarray, ef: int) -> np.ndarray:
        params = ann._params(ef)
        return ann.index.search(v[None, :], 10, params=params)[1][0]

    return search, (folder / "hnsw.faiss").stat().st_size


CHOSEN = [0]  # efSearch the store's recall check chose, for marking its row
CHECK_QUERIES: list[np.ndarray | None] = [None]
NOISY_RECALL = [0.0]

BUILDERS: dict[str, Callable[..., tuple[Callable[[np.ndarray, int], np.ndarray], int]]] = {
    "store": build_store,
    "faiss": build_faiss,
    "hnswlib": build_hnswlib,
    "usearch": build_usearch,
    "usearch-f16": lambda x, t, f: build_usearch(x, t, f, "f16"),
    "usearch-i8": lambda x, t, f: build_usearch(x, t, f, "i8"),
}


def versions() -> str:
    import importlib.metadata as md

    out = [f"numpy {np.__version__}"]
    for name in ("faiss-cpu", "hnswlib", "usearch"):
        with contextlib.suppress(md.PackageNotFoundError):
            out.append(f"{name} {md.version(name)}")
    return ", ".join(out)


def main() -> None:
    global M, EF_CONSTRUCTION
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--libraries", default="faiss,hnswlib,usearch")
    parser.add_argument("--exact-sizes", default="5000,10000,20000,50000,100000",
                        help="Sizes to time exact numpy search at (for the threshold); empty for none")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--m", type=int, default=M, help="HNSW graph degree of the library rows")
    parser.add_argument("--ef-construction", type=int, default=EF_CONSTRUCTION)
    parser.add_argument("--intrinsic", type=int, default=None,
                        help="Dimensions a topic's vectors vary along (default: all 384, isotropic)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ann.md")
    args = parser.parse_args()
    M, EF_CONSTRUCTION = args.m, args.ef_construction
    started = time.time()
    rng = np.random.default_rng(0)
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    exact_rows: list[str] = []
    builds: list[str] = []
    if args.exact_sizes:
        for n in [int(s) for s in args.exact_sizes.split(",")]:
            x, topics = clustered(n, rng, intrinsic=args.intrinsic)
            q, _ = clustered(args.queries, rng, noise=0.8, topics=topics)
            p50, p99, _ = timed(exact_numpy(x), q)
            exact_rows.append(f"| {n:,} | {p50:.2f} | {p99:.2f} |")
            print(exact_rows[-1], flush=True)

    for n in [int(s) for s in args.sizes.split(",")]:
        x, topics = clustered(n, rng, intrinsic=args.intrinsic)
        q, _ = clustered(args.queries, rng, noise=0.8, topics=topics)
        CHECK_QUERIES[0], _ = clustered(500, rng, noise=0.8, topics=topics)
        truth = exact_top10(x, q)
        nearest = np.sort((q @ x[truth[:, 0]].T).diagonal())
        print(f"{n}: query-to-nearest cosine median {np.median(nearest):.2f}", flush=True)
        p50, p99, _ = timed(exact_numpy(x), q[:100])
        emit(f"| {n:,} | exact numpy (the store today) | — | {x.nbytes / 2**20:,.0f} | — | {p50:.2f} | {p99:.2f} "
             f"| 1.000 |")
        for name in [s for s in args.libraries.split(",") if s]:
            with tempfile.TemporaryDirectory() as tmp:
                CHOSEN[0] = 0
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                t0 = time.perf_counter()
                search, size = BUILDERS[name](x, args.threads, Path(tmp))
                build_s = time.perf_counter() - t0
                print(f"{name} {n}: built in {build_s:.0f} s, {size / 2**20:.0f} MiB "
                      f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB, "
                      f"was {rss_before / 2**10:.0f})", flush=True)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
                builds.append(f"| {n:,} | {name} | {build_s:.0f} | {size / 2**20:,.0f} | {peak:,.0f} |")
                for ef in EF_SEARCH:
                    p50, p99, found = timed(lambda v, ef=ef, search=search: search(v, ef), q)
                    label = f"{name} efSearch {ef}"
                    if ef == CHOSEN[0]:
                        label += (f" (chosen by the store's check; the harsher noisy-copy check: recall@10 "
                                  f"{NOISY_RECALL[0]:.3f})")
                    emit(f"| {n:,} | {label} | {build_s:.0f} | {size / 2**20:,.0f} | {ef} | "
                         f"{p50:.3f} | {p99:.3f} | {recall(found, truth):.3f} |")
        del x
    minutes = (time.time() - started) / 60
    header = [
        "## Approximate search for the embedded store: faiss vs hnswlib vs usearch",
        "",
        f"- Command: `.venv/bin/python benchmarks/ann.py --sizes {args.sizes} --libraries {args.libraries} "
        f"--queries {args.queries} --threads {args.threads} --m {M} --ef-construction {EF_CONSTRUCTION}"
        + (f" --intrinsic {args.intrinsic}" if args.intrinsic else "") + "`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {versions()}; {minutes:.0f} min",
        f"- Machine: {describe_machine()}; at the end {os.getloadavg()[0]:.2f} (shared machine: compare rows "
        "of one run)",
        "- Vectors: clustered synthetic unit 384-d vectors (topics of Zipf sizes, ~100 per topic; within a topic "
        + (f"90% of the variation in a {args.intrinsic}-d subspace" if args.intrinsic else "isotropic variation")
        + f"); {args.queries} "
        f"queries drawn from the same topics with more noise; HNSW M={M}, efConstruction={EF_CONSTRUCTION}, "
        f"built on {args.threads} threads, searched one query at a time on one thread",
        "",
    ]
    if exact_rows:
        header += ["### Exact numpy search by store size", "", "| vectors | p50 ms | p99 ms |", "|---:|---:|---:|",
                   *exact_rows, ""]
    header += ["### Builds", "", "| vectors | index | build s | file MiB | peak RSS MiB (process, so far) |",
               "|---:|---|---:|---:|---:|", *builds, ""]
    header += ["### HNSW", "", "| vectors | index | build s | size MiB | efSearch | p50 ms | p99 ms | recall@10 |",
               "|---:|---|---:|---:|---:|---:|---:|---:|"]
    args.out.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
