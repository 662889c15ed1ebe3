"""Assemble BENCHMARKS.md from the result fragments each benchmark script writes.

Every script in ``benchmarks/`` runs alone and writes ``benchmarks/results/<name>.md`` (command, machine,
date, table). This script joins them, in a fixed order, under one heading.

Usage: python benchmarks/assemble.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ORDER = [
    "quality", "recipe_variants", "weight_interpolation", "fusion", "fusion_intent", "fusion-base", "query_reading",
    "first_hit_misses",
    "rerank", "rerank-ce", "rerank-maxsim", "rerank-ce-sample", "rerank-combiner",
    "rerank_latency_cbs", "rerank_latency_stirling", "rerank_latency_sample", "rerank_memory",
    "rerank_memory_sample",
    "answer_threshold", "answer_evidence", "answers", "answers_tuned", "answer_settings", "train_step_cost",
    "train_step_trainer",
    "train_step_quality", "training", "card_reproduction", "card_gpu",
    "encode-quiet", "encode", "encode-memory-latency", "latency", "ann", "ann-1m", "ann-1m-lowdim",
    "milvus_server", "load", "load_stage_off", "load_workers", "load_workers_open", "index_million", "crash_index",
    "robots_parsers",
    "crawl",
]

HEADER = """# Benchmarks

Every table below comes from a script in `benchmarks/` that runs alone and writes its fragment to
`benchmarks/results/`; `python benchmarks/assemble.py` joins the fragments into this file. Each fragment
states the command, the machine and the date. The machine is noisy (2 shared cores): where two things are
compared, they were measured in the same run and the ratio is quoted.
"""


def main() -> None:
    fragments = sorted(RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    parts = [HEADER]
    for fragment in fragments:
        parts.append(fragment.read_text(encoding="utf-8").strip() + "\n")
    tmp = ROOT / "BENCHMARKS.md.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(ROOT / "BENCHMARKS.md")
    print(f"BENCHMARKS.md: {len(fragments)} sections")


if __name__ == "__main__":
    main()
