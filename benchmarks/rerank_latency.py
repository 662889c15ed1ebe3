"""``GET /search`` latency with the cross-encoder reranker on and off, at a fixed arrival rate.

Each variant is a ``sitetune serve`` started by ``load.py`` (pinned to one core, ``--threads 1``) with its
own flags, loaded open-model at ``--rate`` requests/s for ``--duration`` seconds (latency from each
request's scheduled start, as load.py measures it):

- the encoder backend ``auto`` (OpenVINO bi-encoder; the reranker's OpenVINO export) without and with
  the reranker (``--rerank-weight 1 --rerank-depth 10``, so it runs on every query);
- the encoder backend ``torch`` (bi-encoder and reranker on torch) without and with it.

Before the servers, the reranker alone is timed in this process on the top ``--depth`` fused candidates
of each question (torch and OpenVINO, one thread, the CPU's precision). Quality is not measured here (see
rerank.md): the model may be trained for two steps, the cost of reading 10 candidates is the same.

    python benchmarks/rerank_latency.py --store runs/rr-latency-store [--rate 20] [--duration 30]

Writes ``benchmarks/results/rerank_latency.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from load import (
    DEFAULT_QUESTIONS,
    RunResult,
    drain,
    free_port,
    load_questions,
    run_load,
    start_server,
    stop_server,
    wait_healthy,
)
from machine import describe_machine, write_fragment

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "rerank_latency.md"


def variants(depth: int, weight: float) -> list[tuple[str, str, list[str]]]:
    """(name, encoder backend, serve flags) of each server."""
    on = ["--rerank", "--rerank-weight", f"{weight:g}", "--rerank-depth", str(depth)]
    return [
        ("no reranker", "auto", ["--backend", "auto", "--no-rerank"]),
        ("reranker on (OpenVINO)", "auto", ["--backend", "auto", *on]),
        ("no reranker", "torch", ["--backend", "torch", "--no-rerank"]),
        ("reranker on (torch)", "torch", ["--backend", "torch", *on]),
    ]


def time_rerankers(store: str, questions: list[str], depth: int, limit: int) -> list[tuple[str, str, list[float]]]:
    """Milliseconds per ``scores`` call (question + ``depth`` fused candidates) for torch and OpenVINO."""
    from sitetune.config import EncoderConfig, SearchConfig
    from sitetune.rerank import RERANKER_DIR, reranker_documents
    from sitetune.rerank.cross import CrossEncoderReranker
    from sitetune.rerank.openvino_backend import OpenVINOCrossEncoderReranker
    from sitetune.search import Searcher

    config = EncoderConfig(threads=1)
    with Searcher.open(store, config, config=replace(SearchConfig(), rerank=False)) as searcher:
        chunks = searcher.reader.chunks
        batches = [
            (q, reranker_documents([chunks[r] for r, _ in searcher.rank(q)[:depth]])) for q in questions[:limit]
        ]
        folder = Path(searcher.model_path) / RERANKER_DIR
    out = []
    for reranker in (CrossEncoderReranker(folder, config), OpenVINOCrossEncoderReranker(folder, config)):
        reranker.scores(*batches[0])  # first call compiles or allocates
        times = []
        for query, docs in batches:
            start = time.perf_counter()
            reranker.scores(query, docs)
            times.append((time.perf_counter() - start) * 1000)
        out.append((reranker.backend, reranker.precision, times))
    return out


def sweep_openvino(store: str, questions: list[str], limit: int) -> list[tuple[int, int, float]]:
    """(token limit, depth, median ms) of the OpenVINO reranker at shorter inputs and fewer candidates.

    What the latency goal would take: the trained limit (``RerankTrainConfig.max_length``) and depth
    10 against shorter ones; the shorter limits change the scores (not measured here).
    """
    from sitetune.config import EncoderConfig, SearchConfig
    from sitetune.rerank import RERANKER_DIR, reranker_documents
    from sitetune.rerank.openvino_backend import OpenVINOCrossEncoderReranker
    from sitetune.search import Searcher

    config = EncoderConfig(threads=1)
    with Searcher.open(store, config, config=replace(SearchConfig(), rerank=False)) as searcher:
        chunks = searcher.reader.chunks
        ranked = [(q, [chunks[r] for r, _ in searcher.rank(q)[:10]]) for q in questions[:limit]]
        folder = Path(searcher.model_path) / RERANKER_DIR
    reranker = OpenVINOCrossEncoderReranker(folder, config)
    trained = reranker.max_length
    out = []
    for length in (trained, 128, 64):
        reranker.max_length = length
        for depth in (10, 5):
            times = []
            for query, sections in ranked:
                docs = reranker_documents(sections[:depth])
                start = time.perf_counter()
                reranker.scores(query, docs)
                times.append((time.perf_counter() - start) * 1000)
            out.append((length, depth, statistics.median(times)))
    return out


def _without_notes(argv: list[str]) -> list[str]:
    """``argv`` with each ``--note TEXT`` shown as ``--note ...`` (the notes are printed below it)."""
    out: list[str] = []
    for arg in argv:
        out.append("..." if out and out[-1] == "--note" else arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--only", action="append", help="Run only variants whose backend is this (auto, torch).")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="the fragment written (one per site)")
    args = parser.parse_args(argv)
    args.model = None
    where = describe_machine()
    questions = load_questions(Path(args.questions))
    timed = time_rerankers(args.store, questions, args.depth, 40)
    swept = sweep_openvino(args.store, questions, 20)
    results: list[tuple[str, str, RunResult, tuple[float, float, float]]] = []
    pinned = False
    for name, backend, flags in variants(args.depth, args.weight):
        if args.only and backend not in args.only:
            continue
        args.serve_arg = flags
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_server(args, port)  # before pinning this process: a child inherits it
        if not pinned and (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.client_cpu})
            pinned = True
        try:
            asyncio.run(wait_healthy(base, 300, process))
            warm_rate = min(args.rate, 10)
            asyncio.run(run_load(base, "search", questions, warm_rate, max(1, args.warmup) / warm_rate,
                                 args.timeout, args.seed + 1))
            asyncio.run(drain(base))
            load_before = os.getloadavg()[0]
            result = asyncio.run(run_load(base, "search", questions, args.rate, args.duration, args.timeout,
                                          args.seed))
            results.append((name, backend, result, (load_before, *os.getloadavg()[:2])))
            asyncio.run(drain(base))
        finally:
            stop_server(process)
        print(f"{name} [{backend}]: ok {result.ok}/{result.sent}, errors {result.errors}, "
              f"p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms", flush=True)
    lines = [
        f"## Second stages: `/search` latency with the cross-encoder reranker on ({Path(args.store).name})",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {where}; load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- Command: `python benchmarks/rerank_latency.py {' '.join(_without_notes(argv))}` (notes below)",
        f"- Server: `sitetune serve --store {args.store} --threads 1` plus each row's flags, pinned to CPU "
        f"{args.server_cpu} with taskset; generator (load.py's open-model client) pinned to CPU {args.client_cpu}",
        f"- Load: {args.rate:g} requests/s for {args.duration:g} s per server after {args.warmup} warm-up requests; "
        f"the {len(questions)} questions of {Path(args.questions).name} in a fixed shuffled cycle; latency from "
        "each request's scheduled start; the reranker reads the top "
        f"{args.depth} fused candidates of every question (weight {args.weight:g})",
        "",
        "The reranker alone (in-process, one thread, the question and its top "
        f"{args.depth} fused candidates, {len(timed[0][2])} questions):",
        "",
        "| reranker backend | precision | median (ms) | p90 (ms) | max (ms) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for backend, precision, times in timed:
        ordered = sorted(times)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        lines.append(f"| {backend} | {precision} | {statistics.median(times):.1f} | {p90:.1f} | {max(times):.1f} |")
    lines += [
        "",
        "The OpenVINO reranker alone at shorter token limits and fewer candidates (median ms, "
        f"{min(20, len(questions))} questions; the first limit is the trained one, the shorter ones change the "
        "scores, which is not measured here):",
        "",
        "| token limit | 10 candidates (ms) | 5 candidates (ms) |",
        "| ---: | ---: | ---: |",
    ]
    for length in dict.fromkeys(length for length, _, _ in swept):
        ms = {depth: median for n, depth, median in swept if n == length}
        lines.append(f"| {length} | {ms[10]:.1f} | {ms[5]:.1f} |")
    lines += [
        "",
        f"`GET /search` at {args.rate:g} requests/s:",
        "",
        "| server | encoder backend | sent | ok | errors | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) "
        "| load average (1 min) before / after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, backend, r, (before, after, _five) in results:
        errors = str(r.error_count) + (
            f" ({', '.join(f'{k}: {v}' for k, v in r.errors.items())})" if r.errors else ""
        )
        p50, p95, p99 = (r.percentile(q) for q in (50, 95, 99))
        worst = max(r.latencies_ms, default=float("nan"))
        lines.append(f"| {name} | {backend} | {r.sent} | {r.ok} | {errors} | {p50:.1f} | {p95:.1f} | {p99:.1f} "
                     f"| {worst:.1f} | {before:.2f} / {after:.2f} |")
    lines += ["", "Goal (issue 16): p50 ≤ 40 ms and p99 ≤ 100 ms at 20 requests/s with the reranker on."]
    if args.note:
        lines += ["", "Notes:", "", *(f"- {note}" for note in args.note)]
    write_fragment(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
