"""Search latency: query latency on CBS (encode + hybrid search), and vector search at 100k and 1M.

1. CBS: every question of the CBS set, ``--rounds`` times, one at a time through :class:`Searcher`
   (the embedded store, base model): encode, search (dense + BM25 + fusion + hits), total; p50/p99.
2. Random unit 384-d vectors, ``--sizes`` of them, one query at a time, top-10: exact numpy (what the
   embedded store does), faiss flat / IVF / HNSW, Milvus Lite FLAT and IVF_FLAT. Queries are noisy
   copies of stored vectors (cosine ~0.9 to their source), so every query has a true nearest neighbour;
   recall@10 is against exact search. Milvus Lite is measured through pymilvus (its gRPC round trip
   included), as the store uses it.

Writes ``benchmarks/results/latency.md``.

Usage:
    .venv/bin/python benchmarks/latency.py [--store DIR] [--sizes 100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe_machine

# One compute thread per library unless told otherwise: on a shared machine, BLAS/OpenMP thread pools
# that spin against other jobs make single-query latencies meaningless (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
QUESTIONS = REPO / "src" / "sitetune" / "data" / "questions" / "cbs_questions.json"
DIM = 384


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def cbs_latency(store: str | None, rounds: int) -> tuple[list[str], dict[str, int]]:
    from sitetune.index import build_index
    from sitetune.search import Searcher

    questions = [q["text"] for q in json.loads(QUESTIONS.read_text())["queries"]]
    with tempfile.TemporaryDirectory() as tmp:
        if store is None:
            store = str(Path(tmp) / "store")
            build_index(DEFAULT_CORPUS, "base", store, progress=False)
        with Searcher.open(store) as searcher:
            for q in questions[:5]:  # warm-up
                searcher.search(q)
            enc, srch, total = [], [], []
            for _ in range(rounds):
                for q in questions:
                    t0 = time.perf_counter()
                    read = searcher.read(q)
                    t1 = time.perf_counter()
                    hits = searcher.search(read, k=5)
                    t2 = time.perf_counter()
                    assert hits
                    enc.append((t1 - t0) * 1e3)
                    srch.append((t2 - t1) * 1e3)
                    total.append((t2 - t0) * 1e3)
            n = len(searcher.reader.chunks)
    rows = [
        "| step | p50 ms | p99 ms |",
        "|---|---:|---:|",
        f"| encode the question (base model) | {pct(enc, 50):.1f} | {pct(enc, 99):.1f} |",
        f"| search: dense (exact, {n} chunks) + BM25 + RRF + hits | {pct(srch, 50):.2f} | "
        f"{pct(srch, 99):.2f} |",
        f"| **total** | **{pct(total, 50):.1f}** | **{pct(total, 99):.1f}** |",
    ]
    return rows, {"queries": len(total), "questions": len(questions)}


def timed(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    search(queries[0])
    lat, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids = search(q)
        lat.append((time.perf_counter() - t0) * 1e3)
        found.append(np.asarray(ids)[:10])
    return lat, np.stack(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    )


def vector_rows(n: int, n_queries: int, milvus_budget_s: float, hnsw_max: int) -> list[str]:
    import faiss

    faiss.omp_set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    src = rng.integers(0, n, n_queries)
    q = x[src] + 0.5 / np.sqrt(DIM) * rng.standard_normal((n_queries, DIM), dtype=np.float32) * 1.0
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rows: list[str] = []

    def exact(v: np.ndarray) -> np.ndarray:
        s = x @ v
        top = np.argpartition(-s, 9)[:10]
        return top[np.argsort(-s[top])]

    lat, truth = timed(exact, q)
    rows.append(
        f"| {n:,} | embedded store: exact numpy (float32 matmul) | — | {pct(lat, 50):.2f} | "
        f"{pct(lat, 99):.2f} | 1.000 (exact) |"
    )

    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    lat, found = timed(lambda v, ix=flat: ix.search(v[None], 10)[1][0], q)
    rows.append(
        f"| {n:,} | faiss IndexFlatIP (exact) | — | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | "
        f"{recall(found, truth):.3f} |"
    )

    nlist = 1024 if n <= 200_000 else 4096
    t0 = time.perf_counter()
    quant = faiss.IndexFlatIP(DIM)
    ivf = faiss.IndexIVFFlat(quant, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(x[rng.choice(n, min(n, 40 * nlist), replace=False)])
    ivf.add(x)
    build = time.perf_counter() - t0
    for nprobe in (16, 64):
        ivf.nprobe = nprobe
        lat, found = timed(lambda v, ix=ivf: ix.search(v[None], 10)[1][0], q)
        rows.append(
            f"| {n:,} | faiss IVF-Flat nlist {nlist}, nprobe {nprobe} | {build:.0f} s | "
            f"{pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {recall(found, truth):.3f} |"
        )

    if n <= hnsw_max:
        t0 = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        hnsw.add(x)
        build = time.perf_counter() - t0
        hnsw.hnsw.efSearch = 64
        lat, found = timed(lambda v, ix=hnsw: ix.search(v[None], 10)[1][0], q)
        rows.append(
            f"| {n:,} | faiss HNSW M 32, efSearch 64 | {build:.0f} s | {pct(lat, 50):.2f} | "
            f"{pct(lat, 99):.2f} | {recall(found, truth):.3f} |"
        )
    else:
        rows.append(
            f"| {n:,} | faiss HNSW | not run: building it on this 2-core machine exceeds the time box | | | |"
        )

    rows.extend(milvus_rows(x, q, truth, milvus_budget_s))
    return rows


def milvus_rows(x: np.ndarray, q: np.ndarray, truth: np.ndarray, budget_s: float) -> list[str]:
    from pymilvus import DataType, MilvusClient

    n = len(x)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sitetune-milvus-") as tmp:
        client = MilvusClient(str(Path(tmp) / "bench.db"))
        try:
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            params = client.prepare_index_params()
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
            client.create_collection("bench", schema=schema, index_params=params)
            t0 = time.perf_counter()
            batch = 5000
            for start in range(0, n, batch):
                client.insert(
                    "bench", [{"id": i, "vector": x[i]} for i in range(start, min(start + batch, n))]
                )
                elapsed = time.perf_counter() - t0
                if elapsed > budget_s:
                    rate = (start + batch) / elapsed
                    rows.append(
                        f"| {n:,} | Milvus Lite | not run: inserting {n:,} vectors would take "
                        f"~{n / rate / 60:.0f} min (> {budget_s / 60:.0f} min time box) | | | |"
                    )
                    return rows
            client.flush("bench")
            client.load_collection("bench")
            insert = time.perf_counter() - t0

            def search(v: np.ndarray, **sp: int) -> np.ndarray:
                res = client.search(
                    "bench",
                    data=[v],
                    limit=10,
                    search_params={"metric_type": "IP", "params": sp},
                    output_fields=[],
                )
                return np.asarray([hit["id"] for hit in res[0]])

            lat, found = timed(search, q)
            rows.append(
                f"| {n:,} | Milvus Lite FLAT (exact) | {insert:.0f} s insert | {pct(lat, 50):.2f} | "
                f"{pct(lat, 99):.2f} | {recall(found, truth):.3f} |"
            )
            client.release_collection("bench")
            client.drop_index("bench", "vector")
            nlist = 1024 if n <= 200_000 else 4096
            params = client.prepare_index_params()
            params.add_index(
                field_name="vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": nlist}
            )
            t0 = time.perf_counter()
            client.create_index("bench", params)
            client.load_collection("bench")
            build = time.perf_counter() - t0
            for nprobe in (16, 64):
                lat, found = timed(lambda v, p=nprobe: search(v, nprobe=p), q)
                rows.append(
                    f"| {n:,} | Milvus Lite IVF_FLAT nlist {nlist}, nprobe {nprobe} | {build:.0f} s | "
                    f"{pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {recall(found, truth):.3f} |"
                )
        except Exception as exc:  # record what Lite could not do rather than lose the other rows
            rows.append(f"| {n:,} | Milvus Lite | failed: {str(exc).splitlines()[0][:120]} | | | |")
        finally:
            client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", help="An existing CBS index built with the base model (else built in a temp dir)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--milvus-budget-s", type=float, default=600.0, help="Time box per Milvus Lite insert"
    )
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="Largest size to build faiss HNSW for")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "latency.md")
    args = parser.parse_args()

    import torch

    from sitetune.atomic import atomic_write_text

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cbs_rows, info = cbs_latency(args.store, args.rounds)
    vrows: list[str] = []

    def write(done: bool) -> str:
        # Written after every stage, so a run stopped by its time box still leaves what it measured.
        import faiss
        import pymilvus

        lines = [
            "## Search latency",
            "",
            f"- Command: `.venv/bin/python benchmarks/latency.py --sizes {args.sizes} "
            f"--queries {args.queries} --rounds {args.rounds}`"
            + ("" if done else " (stopped early: sizes not listed below were not run)"),
            f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, "
            f"numpy {np.__version__}, faiss {faiss.__version__}, pymilvus {pymilvus.__version__}; "
            f"{(time.perf_counter() - started) / 60:.0f} min",
            f"- Machine: {describe_machine()}; {os.environ['OMP_NUM_THREADS']} compute thread(s); load average "
            f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (the machine is shared "
            "with other jobs: absolute numbers are noisy, compare rows of the same size)",
            "",
            f"### Query latency on CBS ({info['queries']} queries: the {info['questions']} CBS questions "
            f"× {args.rounds}, one at a time)",
            "",
            *cbs_rows,
            "",
            "### Vector search, random unit 384-d vectors, top-10, one query at a time "
            f"({args.queries} queries)",
            "",
            "| vectors | index | build | p50 ms | p99 ms | recall@10 vs exact |",
            "|---:|---|---|---:|---:|---:|",
            *vrows,
            "",
            "Random vectors have no cluster structure, the worst case for IVF (a query's neighbours spread",
            "over many cells), so the IVF recalls here are lower bounds for real embeddings. For one site",
            "the embedded store's exact numpy search is the default (CBS table: about a millisecond).",
            "",
        ]
        atomic_write_text(args.out, "\n".join(lines))
        return "\n".join(lines)

    write(done=False)
    for size in (int(s) for s in args.sizes.split(",")):
        vrows.extend(vector_rows(size, args.queries, args.milvus_budget_s, args.hnsw_max))
        write(done=False)
        print("\n".join(vrows[-8:]), flush=True)
    print(write(done=True))


if __name__ == "__main__":
    main()
