"""Milvus standalone server vs the embedded store: the same CBS results, and vector-search latency.

1. CBS: the corpus indexed with the base model into a Milvus 2.3 standalone server (the test extra's
   ``milvus`` package, started as tests/milvus_server.py does) and into an embedded store; for every CBS
   question, the dense top-10 (same query vector) and the hybrid top-10 are compared, and the dense search
   is timed one query at a time through the store reader (pymilvus's gRPC round trip included).
2. Clustered synthetic unit 384-d vectors (``benchmarks/ann.py``'s generator), ``--sizes`` of them, in a
   collection like the store's (AUTOINDEX, inner product): insert and index time, p50/p99 of one query at
   a time, recall@10 against exact search.

Writes ``benchmarks/results/milvus_server.md``.

Usage:
    .venv/bin/python benchmarks/milvus_server.py [--sizes 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ann import clustered, exact_top10, recall
from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
CBS = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
QUESTIONS = REPO / "src" / "sitetune" / "data" / "questions" / "cbs_questions.json"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def cbs_rows(uri: str, tmp: Path) -> list[str]:
    from sitetune.encode import load_encoder
    from sitetune.index import build_index
    from sitetune.search import Searcher

    t0 = time.perf_counter()
    remote = build_index(CBS, "base", uri, progress=False)
    remote_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_index(CBS, "base", tmp / "store", progress=False)
    local_s = time.perf_counter() - t0
    questions = [q["text"] for q in json.loads(QUESTIONS.read_text())["queries"]]
    encoder = load_encoder("base")
    same_dense = same_hybrid = 0
    lat: dict[str, list[float]] = {"server": [], "embedded": []}
    with Searcher.open(uri, encoder=encoder) as server, Searcher.open(tmp / "store", encoder=encoder) as local:
        for question in questions:
            vector = local.encode_query(question)
            found = {}
            for name, searcher in (("server", server), ("embedded", local)):
                searcher.reader.dense(vector, 10)  # warm
                t0 = time.perf_counter()
                found[name] = [r for r, _ in searcher.reader.dense(vector, 10)]
                lat[name].append((time.perf_counter() - t0) * 1e3)
            same_dense += found["server"] == found["embedded"]
            same_hybrid += [h.chunk_id for h in server.search(question, k=10)] == [
                h.chunk_id for h in local.search(question, k=10)
            ]
    n = len(questions)
    return [
        f"CBS ({remote.chunks} chunks, base model): index into the server {remote_s:.0f} s, into the embedded "
        f"store {local_s:.0f} s (both encode every chunk).",
        "",
        "| check | server = embedded |",
        "|---|---:|",
        f"| dense top-10 ids, same order ({n} questions) | {same_dense}/{n} |",
        f"| hybrid top-10 ids, same order ({n} questions) | {same_hybrid}/{n} |",
        "",
        "| dense search, top-10, one query at a time | p50 ms | p99 ms |",
        "|---|---:|---:|",
        f"| Milvus standalone (pymilvus, gRPC on 127.0.0.1) | {pct(lat['server'], 50):.2f} | "
        f"{pct(lat['server'], 99):.2f} |",
        f"| embedded store (exact numpy) | {pct(lat['embedded'], 50):.3f} | {pct(lat['embedded'], 99):.3f} |",
    ]


def vector_rows(uri: str, n: int, n_queries: int) -> list[str]:
    from pymilvus import DataType, MilvusClient

    rng = np.random.default_rng(0)
    x, topics = clustered(n, rng)
    q, _ = clustered(n_queries, rng, noise=0.8, topics=topics)
    truth = exact_top10(x, q)
    client = MilvusClient(uri, timeout=600)
    name = f"bench_{n}"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=x.shape[1])
    client.create_collection(name, schema=schema, consistency_level="Bounded")
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        stop = min(start + 5000, n)
        client.insert(name, [{"id": i, "vector": x[i].tolist()} for i in range(start, stop)])
    client.flush(name)
    insert_s = time.perf_counter() - t0
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
    t0 = time.perf_counter()
    client.create_index(name, params)
    while True:
        info = client.describe_index(name, client.list_indexes(name)[0])
        if int(info.get("pending_index_rows", 0)) == 0 and int(info.get("indexed_rows", 0)) >= n:
            break
        time.sleep(2)
    client.load_collection(name)
    index_s = time.perf_counter() - t0
    rows = []
    for ef in (None, 64, 256, 1024):
        search_params: dict[str, object] = {"metric_type": "IP"}
        if ef is not None:
            search_params["params"] = {"ef": ef}
        lat, found = [], []
        for v in q:
            t0 = time.perf_counter()
            hits = client.search(name, data=[v.tolist()], limit=10, search_params=search_params,
                                 consistency_level="Bounded")
            lat.append((time.perf_counter() - t0) * 1e3)
            found.append([int(h["id"]) for h in hits[0]])
        label = "default ef" if ef is None else f"ef {ef}" + (" (what the store asks)" if ef == 256 else "")
        rows.append(
            f"| {n:,} | Milvus standalone AUTOINDEX (HNSW), {label} | {insert_s:.0f} s | {index_s:.0f} s | "
            f"{pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {recall(np.asarray(found), truth):.3f} |"
        )
        print(rows[-1], flush=True)
    client.drop_collection(name)
    client.close()
    return rows


def main() -> None:
    from milvus_server import start_milvus_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "milvus_server.md")
    args = parser.parse_args()
    started = time.time()
    machine = describe_machine()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SITETUNE_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = Path(tmp) / "milvus"
        root.mkdir()
        server = start_milvus_server(root)
        try:
            cbs = cbs_rows(f"{server.uri}/cbs", Path(tmp))
            print("\n".join(cbs), flush=True)
            vectors: list[str] = []
            for n in [int(s) for s in args.sizes.split(",") if s]:
                vectors += vector_rows(server.uri, n, args.queries)
                print(vectors[-1], flush=True)
        finally:
            server.stop()
    import milvus
    import pymilvus

    lines = [
        "## Milvus standalone server vs the embedded store",
        "",
        f"- Command: `.venv/bin/python benchmarks/milvus_server.py --sizes {args.sizes} --queries {args.queries}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Milvus {milvus.__version__} standalone (PyPI "
        f"`milvus`), pymilvus {pymilvus.__version__}; {(time.time() - started) / 60:.0f} min",
        f"- Machine: {machine}; the server runs on the same 2 shared cores as the client",
        "",
        *cbs,
        "",
        f"Clustered synthetic unit 384-d vectors (benchmarks/ann.py's generator), {args.queries} queries, "
        "top-10, one query at a time:",
        "",
        "| vectors | index | insert + flush | index build | p50 ms | p99 ms | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *vectors,
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
