"""What the extractive answer quotes: correctness, length and stray citations, for answer settings side by side.

For each site (a store and its question sets) and each answer configuration, the served answerer answers
every answerable question. Columns: answered correctly (an answer string in the answer text, or a grade-2
first citation), wrongly "not found", mean answer length in words (found answers, citation markers
removed), and the share of found answers citing a section judged irrelevant to the question (no grade).
Writes ``benchmarks/results/answers.md``.

Usage:
    python benchmarks/answers.py --site cbs=runs/cbs-store:cbs-v2 --site stirling=runs/stir-store:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

from machine import describe_machine, write_fragment

from sitetune.answer import Answerer
from sitetune.config import AnswerConfig
from sitetune.corpus import Corpus
from sitetune.evaluation.querysets import load_query_file, normalise
from sitetune.search import Searcher

RESULT = Path(__file__).resolve().parent / "results" / "answers.md"
_MARKER = re.compile(r"\s*\[\d+\]")
#: The configurations compared: the defaults, and fewer or more sentences per answer.
VARIANTS = {
    "default": AnswerConfig(),
    "max_sentences 2": replace(AnswerConfig(), max_sentences=2),
    "max_sentences 6": replace(AnswerConfig(), max_sentences=6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="name=STORE:queryset[,queryset]")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    lines = ["## Extractive answers: correctness, length and stray citations", "",
             f"- Command: `python benchmarks/answers.py {' '.join('--site ' + s for s in args.site)}`",
             f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}", "",
             "| site | answer settings | answered correctly | answerable → not found | words (mean) | "
             "cites an irrelevant section |", "|---|---|---:|---:|---:|---:|"]
    for spec in args.site:
        name, rest = spec.split("=", 1)
        store, sets = rest.rsplit(":", 1)
        with Searcher.open(store) as searcher:
            corpus = Corpus.from_records(c.record() for c in searcher.reader.chunks)
            queries = [q for s in sets.split(",") for q in load_query_file(s, corpus).queries]
            for label, config in VARIANTS.items():
                answerer = Answerer(searcher, config)
                correct = not_found = stray = 0
                words: list[int] = []
                for q in queries:
                    answer = answerer.answer(q.text)
                    if not answer.found:
                        not_found += 1
                        continue
                    text = _MARKER.sub("", answer.text)
                    words.append(len(text.split()))
                    if q.answers:
                        correct += any(normalise(a) in normalise(text) for a in q.answers)
                    else:
                        correct += bool(answer.citations) and q.relevant.get(answer.citations[0].chunk_id, 0) >= 2
                    stray += any(c.chunk_id not in q.relevant for c in answer.citations)
                n = len(queries)
                found = max(1, len(words))
                lines.append(f"| {name} ({n}) | {label} | {correct / n:.1%} | {not_found / n:.1%} | "
                             f"{sum(words) / found:.0f} | {stray / found:.1%} |")
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
