"""Index N synthetic sections through ``sitetune index`` (static encoder) and measure peak RSS and time.

The corpus is generated, not downloaded: pages of ~8 sections, each section 50-300 words drawn half from
its page's topic (150 words of a Zipf-weighted vocabulary: the base model's whole-word tokens) and half
from the whole vocabulary, with sentence breaks, realistic section titles ("Admission requirements",
"Tuition fees (Part 2)", ...) and 3% boilerplate rows (texts repeated on many pages, as a crawled site
has). It is written as CSV, the crawler's format.

The index runs as a subprocess, exactly as a user runs it (``sitetune index --backend static --json``),
so its memory is its own: peak RSS is the child's ``ru_maxrss`` from ``wait4`` (the kernel's high-water
mark, VmHWM), and VmRSS is sampled every half second to show where the peak falls. The static encoder
(a distilled token table, ``sitetune export base --backend static``; made here if missing) is used
because encoding a million sections with the transformer takes hours on this CPU; everything else (the
streaming build, BM25, HNSW from 50k chunks, the crash-safe commit) is the same code as any index.

Results accumulate in ``benchmarks/results/index_million.json`` (one entry per size) and the fragment
``benchmarks/results/index_million.md`` is rewritten from all of them.

Usage (run it niced on a shared machine):
    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/index_million.py --sections 100000
    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/index_million.py --sections 1000000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
RESULTS = REPO / "benchmarks" / "results"
SITETUNE = Path(sys.executable).parent / "sitetune"
TITLES = (
    "Overview", "Admission requirements", "How to apply", "Application deadline", "Tuition fees",
    "Scholarships", "Programme structure", "Courses", "Career opportunities", "Contact", "Study abroad",
    "Entry requirements", "English language requirements", "Documentation", "Exemptions", "Legal claim",
    "Accommodation", "Student life", "Research", "Faculty", "Internships", "Credit transfer",
    "Exchange programmes", "Assessment", "Learning outcomes", "Teaching methods", "Alumni",
    "Frequently asked questions", "Visa and residence", "Funding", "Start dates", "Part-time study",
)
KINDS = ("MSc in", "MA in", "Graduate Diploma in", "Executive Master of", "PhD in", "Certificate in")


def vocabulary() -> list[str]:
    """Whole-word tokens of the base model's vocabulary (alphabetic, 3+ letters), in a fixed order."""
    from sitetune.models import resolve_model_path

    vocab = json.loads((resolve_model_path("base") / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return sorted(w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 3)


def generate(path: Path, n: int, seed: int) -> dict[str, float]:
    """Write ``n`` section rows to ``path`` (CSV); returns what the corpus looks like."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary(), dtype=object)
    rng.shuffle(words)
    zipf = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    cumulative = np.cumsum(zipf / zipf.sum())
    n_topics = max(50, n // 400)
    topics = np.minimum(np.searchsorted(cumulative, rng.random((n_topics, 150))), len(words) - 1)
    boilerplate = [
        " ".join(words[np.minimum(np.searchsorted(cumulative, rng.random(int(rng.integers(40, 120)))),
                                  len(words) - 1)]) + "."
        for _ in range(200)
    ]
    total_words = 0
    lengths: list[int] = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["url", "page_name", "section_title", "section_type", "text_chunk"])
        row = page = 0
        while row < n:
            topic = int(rng.integers(n_topics))
            name = f"{KINDS[page % len(KINDS)]} {words[topics[topic, 0]].capitalize()} " \
                   f"{words[topics[topic, 1]].capitalize()} {page}"
            url = f"https://www.example.edu/programmes/{page}/"
            sections = min(int(rng.integers(4, 13)), n - row)
            lens = rng.integers(50, 301, size=sections)
            count = int(lens.sum())
            from_topic = rng.random(count) < 0.5
            ids = np.where(from_topic, topics[topic, rng.integers(0, 150, size=count)],
                           np.minimum(np.searchsorted(cumulative, rng.random(count)), len(words) - 1))
            tokens = words[ids]
            stops = rng.random(count) < 1 / 15
            tokens[stops] = np.char.add(tokens[stops].astype(str), ".")
            start = 0
            for s, length in enumerate(lens):
                title = TITLES[int(rng.integers(len(TITLES)))]
                if rng.random() < 0.03:
                    text = boilerplate[int(rng.integers(len(boilerplate)))]
                else:
                    text = " ".join(tokens[start : start + length]).capitalize() + "."
                    total_words += int(length)
                    lengths.append(int(length))
                start += int(length)
                shown = f"{title} (Part {s})" if s and rng.random() < 0.2 else title
                writer.writerow([url, name, shown, title, text])
            row += sections
            page += 1
    return {"rows": n, "pages": page, "mean_words": total_words / max(len(lengths), 1),
            "mb": path.stat().st_size / 2**20}


def ensure_static_export() -> None:
    """Make the base model's static export if it is missing (a minute; weights from the packaged corpus)."""
    from sitetune.encode.export import export_dir
    from sitetune.models import resolve_model_path

    if (export_dir(resolve_model_path("base"), "static") / "manifest.json").is_file():
        return
    corpus = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
    subprocess.run([str(SITETUNE), "export", "base", "--backend", "static", "--corpus", str(corpus)], check=True)


def run_index(corpus: Path, store: Path, log: Path, kill_after: float | None = None) -> dict[str, object]:
    """Run ``sitetune index`` in a child process; its report, wall time, peak RSS and RSS timeline."""
    command = [str(SITETUNE), "index", "--corpus", str(corpus), "--model", "base", "--backend", "static",
               "--store", str(store), "--json"]
    started = time.perf_counter()
    samples: list[tuple[float, int]] = []
    lines: list[tuple[float, str]] = []
    with open(log, "a", encoding="utf-8") as log_fh:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def read_stderr() -> None:
            assert child.stderr is not None
            for line in child.stderr:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
                log_fh.write(f"{time.perf_counter() - started:9.1f} {line}")
                log_fh.flush()

        def sample() -> None:
            status = Path(f"/proc/{child.pid}/status")
            while child.returncode is None:
                try:
                    text = status.read_text()
                except OSError:
                    return
                match = re.search(r"VmRSS:\s+(\d+) kB", text)
                if match:
                    samples.append((time.perf_counter() - started, int(match.group(1)) * 1024))
                time.sleep(0.5)

        threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=sample, daemon=True)]
        for t in threads:
            t.start()
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(child.pid, signal.SIGKILL)
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        for t in threads:
            t.join(timeout=5)
    wall = time.perf_counter() - started
    result: dict[str, object] = {"wall_s": round(wall, 1), "peak_rss": usage.ru_maxrss * 1024,
                                 "returncode": child.returncode, "lines": lines,
                                 "rss": samples[:: max(1, len(samples) // 400)]}
    if child.returncode == 0:
        result["report"] = json.loads(out)
    return result


def phase_times(lines: list[tuple[float, str]]) -> dict[str, float]:
    """When the streaming part ended and the HNSW build started and ended (seconds from the start)."""
    marks: dict[str, float] = {}
    for at, line in lines:
        if line.startswith("writing ") and "chunk records" in line:
            marks["streamed"] = at
        elif line.startswith("building the HNSW index"):
            marks["hnsw_start"] = at
        elif line.startswith("HNSW index built"):
            marks["hnsw_end"] = at
            found = re.search(r"recall@10 ([0-9.]+)", line)
            if found:
                marks["hnsw_recall"] = float(found.group(1))
    return marks


def peak_in(samples: list[tuple[float, int]], start: float, end: float) -> int:
    return max((rss for at, rss in samples if start <= at <= end), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sitetune-index-million"))
    parser.add_argument("--kill-after", type=float, default=None,
                        help="SIGKILL the first run after this many seconds, then rerun (measures the resume)")
    parser.add_argument("--keep", action="store_true", help="Keep the corpus and store")
    args = parser.parse_args()

    machine = describe_machine()
    ensure_static_export()
    work = args.workdir / str(args.sections)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    corpus, store, log = work / "corpus.csv", work / "store", work / "index.log"
    t0 = time.perf_counter()
    shape = generate(corpus, args.sections, args.seed)
    generated_s = time.perf_counter() - t0
    print(f"generated {args.sections:,} sections ({shape['mb']:.0f} MB) in {generated_s:.0f} s", flush=True)

    killed: dict[str, object] | None = None
    if args.kill_after is not None:
        killed = run_index(corpus, store, log, kill_after=args.kill_after)
        print(f"killed after {killed['wall_s']} s (peak RSS {int(killed['peak_rss']) / 2**30:.2f} GiB)", flush=True)
    run = run_index(corpus, store, log)
    if run["returncode"] != 0:
        sys.exit(f"sitetune index failed ({run['returncode']}); see {log}")
    report = run["report"]
    assert isinstance(report, dict)
    lines = run["lines"]
    samples = run["rss"]
    assert isinstance(lines, list) and isinstance(samples, list)
    marks = phase_times(lines)
    wall = float(run["wall_s"])  # type: ignore[arg-type]
    streamed = marks.get("streamed", wall)
    ann = report.get("ann")
    store_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    entry = {
        "sections": args.sections,
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "machine": machine,
        "corpus_mb": round(shape["mb"], 1),
        "mean_words": round(shape["mean_words"], 1),
        "pages": shape["pages"],
        "chunks": report["chunks"],
        "wall_s": wall,
        "stream_s": round(streamed, 1),
        "rows_per_s": round(report["chunks"] / max(streamed, 1e-9)),
        "hnsw": ann is not None,
        "hnsw_s": round(marks["hnsw_end"] - marks["hnsw_start"], 1) if "hnsw_end" in marks else None,
        "hnsw_recall_at_10": ann.get("recall_at_10") if ann else None,
        "hnsw_ef_search": ann.get("ef_search") if ann else None,
        "hnsw_refused": "hnsw_end" in marks and ann is None,
        "hnsw_checked_recall_at_10": marks.get("hnsw_recall"),
        "peak_rss_gib": round(int(run["peak_rss"]) / 2**30, 2),  # type: ignore[call-overload]
        "peak_rss_stream_gib": round(peak_in(samples, 0, streamed) / 2**30, 2),
        "peak_rss_hnsw_gib": round(peak_in(samples, marks.get("hnsw_start", wall), marks.get("hnsw_end", wall))
                                   / 2**30, 2) if "hnsw_start" in marks else None,
        "store_gib": round(store_bytes / 2**30, 2),
        "resumed": report.get("resumed", 0),
        "killed_after_s": killed["wall_s"] if killed else None,
    }
    print(json.dumps(entry, indent=2), flush=True)
    if not args.keep:
        shutil.rmtree(work)
    path = RESULTS / "index_million.json"
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entries[str(args.sections) + ("-resumed" if killed else "")] = entry
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    write_fragment(RESULTS / "index_million.md", fragment(entries))


def fragment(entries: dict[str, dict[str, object]]) -> list[str]:
    lines = [
        "## Indexing a million sections in bounded memory (`sitetune index`, streaming build)",
        "",
        "- Command: `OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/index_million.py --sections N` "
        "(`--kill-after S`: SIGKILL the first run after S seconds, then rerun: the resume)",
        "- Corpus: generated CSV, pages of 4-12 sections of 50-300 words (half from the page's topic, half "
        "from a Zipf-weighted vocabulary of the base model's whole words), 3% boilerplate rows repeated "
        "across pages; encoder: the base model's static export (a distilled token table, 256-d: "
        "`sitetune export base --backend static`), not the transformer",
        "- Peak RSS: the `sitetune index` process's `ru_maxrss` (VmHWM); HNSW: built by the store from 50k "
        "chunks, its time and memory included; one thread (`OMP_NUM_THREADS=1`), niced",
        "",
        "| sections | corpus | chunks | wall | streamed (read, encode, write) | HNSW | peak RSS (streaming / "
        "HNSW / whole run) | store on disk |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key in sorted(entries, key=lambda k: (int(k.split("-")[0]), k)):
        e = entries[key]
        if e["hnsw"]:
            hnsw = f"built in {e['hnsw_s']:,} s, recall@10 {e['hnsw_recall_at_10']} at efSearch {e['hnsw_ef_search']}"
        elif e["hnsw_refused"]:
            reached = f" (recall@10 {e['hnsw_checked_recall_at_10']} at efSearch 1024)" \
                if e.get("hnsw_checked_recall_at_10") is not None else ""
            hnsw = f"built in {e['hnsw_s']:,} s, refused by its recall check{reached}: exact search kept"
        else:
            hnsw = "none (below 50k)"
        resumed = f", resumed after a SIGKILL at {e['killed_after_s']} s ({e['resumed']:,} chunks kept)" \
            if e.get("killed_after_s") else ""
        lines.append(
            f"| {e['sections']:,}{resumed} | {e['corpus_mb']:,} MB, {e['mean_words']} words/section | "
            f"{e['chunks']:,} | {e['wall_s']:,} s | {e['stream_s']:,} s, {e['rows_per_s']:,} chunks/s | {hnsw} | "
            f"{e['peak_rss_stream_gib']} / {e['peak_rss_hnsw_gib'] or '-'} / **{e['peak_rss_gib']} GiB** | "
            f"{e['store_gib']} GiB |"
        )
    lines.append("")
    for key in sorted(entries, key=lambda k: (int(k.split("-")[0]), k)):
        lines.append(f"- {key}: {entries[key]['date']}; {entries[key]['machine']}")
    return lines


if __name__ == "__main__":
    main()
