"""Encoder benchmark: every backend against the fp32 sentence-transformers baseline, in one run.

Measures, on the unique chunks of a corpus (CBS by default):

- throughput (chunks/s): every backend encodes the whole corpus, interleaved, ``--rounds`` times; the
  best round counts (the machine is shared, so the best round is the least disturbed) and the median is
  shown beside it; ratios are to the baseline of the same run;
- peak RSS: a fresh process per backend loads it and encodes the longest 128 chunks;
- quality: mean (and minimum) cosine to the fp32 baseline's vectors, and nDCG@10 (linear gains) on the
  question set, ranking every unique chunk by cosine;
- query latency: encode one question + exact search over the corpus matrix + top-10, p50 and p90.

Usage:
    .venv/bin/python benchmarks/encode.py [--rounds 3] [--out benchmarks/results/encode.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
DEFAULT_QUESTIONS = REPO / "src" / "sitetune" / "data" / "questions" / "cbs_questions.json"
BASELINE = "sentence-transformers"
#: Rows of the table: name -> (backend, precision). "st-autocast" is the previous default path.
ROWS: dict[str, tuple[str, str]] = {
    "sentence-transformers fp32 (baseline)": (BASELINE, "fp32"),
    "sentence-transformers + bf16 autocast": ("st-autocast", "bf16"),
    "torch fp32 (sorted batches)": ("torch", "fp32"),
    "torch bf16 weights": ("torch", "bf16"),
    "openvino fp32": ("openvino", "fp32"),
    "openvino bf16": ("openvino", "bf16"),
    "openvino-int8 (static, calibrated)": ("openvino-int8", "bf16"),
    "static (distilled, 256-d)": ("static", "fp32"),
}


class AutocastEncoder:
    """sentence-transformers' own encode under ``torch.autocast`` bf16: the previous default path."""

    def __init__(self, model: str, batch_size: int) -> None:
        from sitetune.encode.torch_backend import SentenceTransformersEncoder

        self.inner = SentenceTransformersEncoder(model)
        self.batch_size = batch_size
        self.dim = self.inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            v = self.inner.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(v, dtype=np.float32)


def load(name: str, model: str, batch_size: int) -> Any:
    """Load the encoder of one table row."""
    from sitetune.config import EncoderConfig, Precision
    from sitetune.encode import load_encoder

    backend, precision = ROWS[name]
    if backend == "st-autocast":
        return AutocastEncoder(model, batch_size)
    config = EncoderConfig(backend=backend, precision=Precision(precision), batch_size=batch_size)
    return load_encoder(model, config)


@dataclass
class Row:
    name: str
    load_s: float = 0.0
    times: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None
    cos_mean: float | None = None
    cos_min: float | None = None
    ndcg: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None


def ndcg_at_10(scores: np.ndarray, relevant: dict[str, int], ids: list[str]) -> float:
    """nDCG@10 with linear gains (grade), log2 discounts, over one query's scores for every chunk."""
    top = np.argsort(-scores, kind="stable")[:10]
    dcg = sum(relevant.get(ids[i], 0) / np.log2(rank + 2) for rank, i in enumerate(top))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / np.log2(rank + 2) for rank, g in enumerate(ideal))
    return float(dcg / idcg) if idcg > 0 else 0.0


def peak_rss(name: str, model: str, batch_size: int, texts_file: Path) -> float:
    """Peak RSS (MB) of a fresh process that loads the row's encoder and encodes the texts in a file."""
    here = str(Path(__file__).parent)
    code = (
        f"import json,sys;sys.path.insert(0,{here!r});import encode as b;"
        f"t=json.load(open({str(texts_file)!r}));e=b.load({name!r},{model!r},{batch_size});e.encode(t);"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def machine() -> str:
    """CPU model, cores and bf16/AMX flags, as lscpu and /proc/cpuinfo give them."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = Path("/proc/cpuinfo").read_text()
    units = [f for f in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni") if f in flags]
    return (
        f"{info.get('Model name', '?').strip()}, {os.cpu_count()} logical CPUs, "
        f"{info.get('Core(s) per socket', '?').strip()} cores/socket, "
        f"{info.get('Thread(s) per core', '?').strip()} thread(s)/core; {', '.join(units) or 'no bf16 units'}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="base")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), help="table rows to run (default: all)")
    parser.add_argument("--reexport", action="store_true", help="rebuild exports even where they exist")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "encode.md")
    args = parser.parse_args(argv)

    from sitetune.corpus import Corpus
    from sitetune.encode import export_model
    from sitetune.encode.export import calibration_texts, export_dir
    from sitetune.encode.threads import choose_threads
    from sitetune.modelinfo import load_model_info
    from sitetune.models import resolve_model_path

    started = time.time()
    load_before = os.getloadavg()
    model_path = resolve_model_path(args.model)
    info = load_model_info(model_path)
    chunks = Corpus.load(args.corpus).chunks
    texts = [info.document(c) for c in chunks]
    ids = [c.chunk_id for c in chunks]
    queries = json.loads(args.questions.read_text(encoding="utf-8"))["queries"]
    qtexts = [info.query(q["text"]) for q in queries]
    names = [BASELINE_ROW] + [n for n in args.rows if n != BASELINE_ROW]

    export_times: dict[str, float] = {}
    calib = calibration_texts(args.corpus, model_path)
    for backend in sorted({ROWS[n][0] for n in names} & {"openvino", "openvino-int8", "static"}):
        if args.reexport or not (export_dir(model_path, backend) / "manifest.json").is_file():
            t0 = time.perf_counter()
            export_model(model_path, backend, texts=calib)
            export_times[backend] = time.perf_counter() - t0
            print(f"exported {backend} in {export_times[backend]:.1f}s", flush=True)

    rows = {n: Row(n) for n in names}
    encoders = {}
    for n in names:
        t0 = time.perf_counter()
        encoders[n] = load(n, args.model, args.batch_size)
        encoders[n].encode(texts[:4])  # warm-up: first-call allocations and kernel selection
        rows[n].load_s = time.perf_counter() - t0
    for r in range(args.rounds):
        for n in names:
            t0 = time.perf_counter()
            v = encoders[n].encode(texts)
            rows[n].times.append(time.perf_counter() - t0)
            rows[n].vectors = v
            print(f"round {r + 1} {n}: {len(texts) / rows[n].times[-1]:.1f} chunks/s", flush=True)

    ref = rows[names[0]].vectors
    assert ref is not None
    for n in names:
        row = rows[n]
        v = row.vectors
        assert v is not None
        if v.shape == ref.shape:
            cos = np.sum(v * ref, axis=1)
            row.cos_mean, row.cos_min = float(cos.mean()), float(cos.min())
        qv = encoders[n].encode(qtexts)
        per_query = [ndcg_at_10(v @ q, query["relevant"], ids) for q, query in zip(qv, queries, strict=True)]
        row.ndcg = float(np.mean(per_query))
        for _ in range(3):
            for q in qtexts:
                t0, c0 = time.perf_counter(), time.process_time()
                scores = v @ encoders[n].encode([q])[0]
                np.argpartition(-scores, 10)[:10]
                row.latencies_ms.append((time.perf_counter() - t0) * 1000)
                row.cpu_ms.append((time.process_time() - c0) * 1000)

    longest = sorted(texts, key=len, reverse=True)[:128]
    tmp = args.out.parent / ".encode_rss_texts.json"
    tmp.write_text(json.dumps(longest), encoding="utf-8")
    try:
        for n in names:
            with contextlib.suppress(subprocess.CalledProcessError):
                rows[n].rss_mb = peak_rss(n, args.model, args.batch_size, tmp)
    finally:
        tmp.unlink(missing_ok=True)

    base_best = min(rows[names[0]].times)
    base_ndcg = rows[names[0]].ndcg
    cli_args = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python benchmarks/encode.py", *cli_args])
    end = os.getloadavg()
    exports = ", ".join(f"{k} {v:.1f}s" for k, v in export_times.items()) or "none (reused)"
    lines = [
        "## Encoder benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}",
        f"- Machine: {machine()}; compute threads used: {choose_threads()}",
        f"- Load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in load_before)}, "
        f"at end {'/'.join(f'{x:.1f}' for x in end)} "
        "(the machine is shared: compare ratios within this run, not absolute numbers across runs)",
        f"- Corpus: {args.corpus.name}, {len(texts)} unique chunks; model: {args.model}; "
        f"batch {args.batch_size}; {args.rounds} interleaved rounds, best round counted (median beside it)",
        f"- Quality: {len(queries)} questions from {args.questions.name}, "
        "nDCG@10 (linear gains) over all chunks",
        f"- Exports made in this run: {exports}",
        "",
        "| backend | chunks/s (best) | chunks/s (median) | × fp32 | peak RSS MB | cos vs fp32 mean (min) "
        "| nDCG@10 | Δ nDCG | query p50 ms | query p90 ms | query CPU p50 ms | load s |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        row = rows[n]
        best, median = len(texts) / min(row.times), len(texts) / statistics.median(row.times)
        cos = "n/a (other space)" if row.cos_mean is None else f"{row.cos_mean:.5f} ({row.cos_min:.4f})"
        lat = sorted(row.latencies_ms)
        p50, p90 = lat[len(lat) // 2], lat[int(len(lat) * 0.9)]
        cpu50 = sorted(row.cpu_ms)[len(row.cpu_ms) // 2]
        rss = "?" if row.rss_mb is None else f"{row.rss_mb:.0f}"
        lines.append(
            f"| {n} | {best:.1f} | {median:.1f} | {base_best / min(row.times):.2f} | {rss} | {cos} "
            f"| {row.ndcg:.4f} | {row.ndcg - base_ndcg:+.4f} | {p50:.2f} | {p90:.2f} | {cpu50:.2f} "
            f"| {row.load_s:.1f} |"
        )
    lines += [
        "",
        "Query latency: encode one question + exact cosine search over all chunks + top-10, 3 x "
        f"{len(qtexts)} questions. Wall time suffers from the shared machine's load; the process's CPU time "
        "(all its threads) bounds what the wall time would be on an idle machine.",
        "",
        f"Total benchmark time: {time.time() - started:.0f} s",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


BASELINE_ROW = "sentence-transformers fp32 (baseline)"

if __name__ == "__main__":
    main()
