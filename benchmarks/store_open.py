"""How long opening a store for search takes: cold (a fresh process) and again in the same process.

A server opens a store at start and again at every live switch to a new generation; evaluation and the
benchmarks open stores many times. The site analysis (vocabulary, template pages, abbreviations, spelling
words) is written at index time and read, not derived, when a store opens. "cold" is a fresh Python process
importing sitetune and opening the store with its model (the model's load included); "again" reopens it in
that process with the encoder already loaded (what a live switch to a generation built by the same model
costs), the median of ``--rounds``. Writes ``benchmarks/results/store_open.md``.

Usage:
    python benchmarks/store_open.py --store runs/cbs-store [--store runs/stirling-store] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
from pathlib import Path

from machine import describe_machine, write_fragment

RESULT = Path(__file__).resolve().parent / "results" / "store_open.md"

# Run in a child process, so "cold" is a process that has imported nothing yet.
_CHILD = """
import json, sys, time
started = time.perf_counter()
from sitetune.search import Searcher
imported = time.perf_counter()
searcher = Searcher.open(sys.argv[1])
opened = time.perf_counter()
again = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    Searcher.open(sys.argv[1], encoder=searcher.encoder).close()
    again.append(time.perf_counter() - t)
stored = searcher.reader.generation.site is not None
print(json.dumps({"import": imported - started, "cold": opened - imported, "again": again,
                  "chunks": len(searcher.reader.chunks), "stored": stored}))
"""


def measure(store: str, rounds: int) -> dict[str, object]:
    """Times of one store, from a fresh process."""
    out = subprocess.run([sys.executable, "-c", _CHILD, store, str(rounds)], capture_output=True, text=True,
                         check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    rows = []
    for store in args.store:
        r = measure(store, args.rounds)
        again = [float(x) for x in r["again"]]  # type: ignore[union-attr]
        rows.append(f"| `{store}` | {r['chunks']} | {'yes' if r['stored'] else 'no (derived when opened)'} | "
                    f"{r['import']:.2f} | {r['cold']:.2f} | {statistics.median(again):.3f} | {max(again):.3f} |")
        print(rows[-1], flush=True)
    write_fragment(args.out, [
        "## Opening a store for search",
        "",
        "- Command: `python benchmarks/store_open.py " + " ".join(f"--store {s}" for s in args.store)
        + f" --rounds {args.rounds}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- cold: a fresh process opening the store with its model (after importing sitetune); again: reopening"
        " it in that process with the encoder loaded (median and worst of the rounds). Goal: again ≤ 0.3 s.",
        "",
        "| store | chunks | site analysis stored | import s | cold open s | again s (median) | again s (max) |",
        "|---|---:|---|---:|---:|---:|---:|",
        *rows,
    ])


if __name__ == "__main__":
    main()
