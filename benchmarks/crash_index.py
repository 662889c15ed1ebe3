"""Kill-and-check, full form: SIGKILL ``sitetune index`` (first build and incremental re-indexes) 50+ times.

After every kill the store is opened and checked: readable, and holding exactly the old or the new
corpus (no missing, phantom or duplicate chunk_ids, one unit vector per chunk, the manifest naming that
corpus). See :mod:`sitetune.index.crashcheck`. Writes ``benchmarks/results/crash_index.md``.

Usage:
    .venv/bin/python benchmarks/crash_index.py [--kills 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "cbs_graduate_programs.csv"
# Overlapping slices of CBS: each re-index reuses shared chunks, embeds new ones and drops removed ones.
PAGES_A = ("Deadlines", "Exemptions", "Legal claim", "How to apply", "Documentation",
           "Finance and Investments")
PAGES_B = ("Exemptions", "Legal claim", "How to apply", "Ukrainian applicants", "Non-EU/EEA citizens",
           "Finance and Investments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "crash_index.md")
    args = parser.parse_args()

    from sitetune.atomic import atomic_write_text
    from sitetune.corpus import Corpus
    from sitetune.index.crashcheck import kill_loop
    from sitetune.recordio import write_records

    corpus = Corpus.load(args.corpus)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sitetune-crash-") as tmp:
        a, b = Path(tmp) / "a.jsonl", Path(tmp) / "b.jsonl"
        write_records([r for r in corpus.records if r.page_name in PAGES_A], a)
        write_records([r for r in corpus.records if r.page_name in PAGES_B], b)
        ca, cb = Corpus.load(a), Corpus.load(b)
        ids_a, ids_b = {c.chunk_id for c in ca.chunks}, {c.chunk_id for c in cb.chunks}
        report = kill_loop(a, b, Path(tmp) / "store", kills=args.kills, seed=args.seed)
    minutes = (time.perf_counter() - started) / 60
    verdict = "PASS" if not report.failures else f"FAIL ({len(report.failures)} violated checks)"
    lines = [
        "## Crash safety: kill-and-check of `sitetune index`",
        "",
        f"- Command: `.venv/bin/python benchmarks/crash_index.py --kills {args.kills} --seed {args.seed}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}; "
        f"{platform.machine()}, {platform.system()}; {minutes:.1f} min",
        f"- Corpora: CBS slices A ({len(ids_a)} chunks) and B ({len(ids_b)} chunks; "
        f"{len(ids_a & ids_b)} shared); "
        "runs alternate A→B→A, each an incremental re-index of the other",
        "- Kill moments: half uniform over a whole run (first uninterrupted re-index "
        f"{report.run_seconds:.1f} s, "
        "then the median of recent uninterrupted runs), "
        "half in its last quarter where the generation is written and switched; "
        "plus one kill of the first build",
        "",
        "| runs | SIGKILLed | finished first | store held old corpus | store held new corpus | fell back "
        "| result |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {report.kills + report.completed} | {report.kills} | {report.completed} | {report.old} | "
        f"{report.new} | {report.fell_back} | {verdict} |",
        "",
        f"{report.old} checks found the old corpus (killed before the switch to the new generation), "
        f"{report.new} the new one (finished, or killed after the switch). "
        "After every run the store opened and held exactly one of the two corpora: no missing, phantom or "
        "duplicate chunk_ids, one unit-length vector per chunk, and a manifest naming that corpus."
        if not report.failures else "Violations:\n\n" + "\n".join(f"- {f}" for f in report.failures),
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
