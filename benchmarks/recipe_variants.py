"""Training-recipe variants at the default step count, judged on two real sites' development and test halves.

Each variant is a model folder trained with ``sitetune train`` at the planned (default) step count on one
site; each is indexed (``sitetune.index.build_index``, stores kept under ``--workdir``) and ranked through
``sitetune.evaluation.served`` (the searcher ``sitetune search`` serves): its dense ranking alone and the
served pipeline at default settings. The packaged base model is the first row of every site. A variant is
kept only if it helps on both sites' development halves; the test halves are reported beside them.
Writes ``benchmarks/results/recipe_variants.md``.

Usage (one ``--model`` per variant and site; LABEL is the variant's name):
    sitetune train --corpus CBS --out runs/cbs-default
    sitetune pairs CBS --recipe retrieval --hard-negatives --out runs/cbs-hn-pairs
    sitetune train --pairs runs/cbs-hn-pairs --out runs/cbs-hn
    python benchmarks/recipe_variants.py --site cbs=CBS:cbs,cbs-v2 --site stirling=STIR:stirling \\
        --model cbs:default=runs/cbs-default --model cbs:hard-negatives=runs/cbs-hn ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

from fusion import Site, open_site, score
from machine import describe_machine, write_fragment

from sitetune.config import SearchConfig
from sitetune.index import build_index

RESULT = Path(__file__).resolve().parent / "results" / "recipe_variants.md"
SERVED = SearchConfig()
DENSE = replace(SERVED, bm25_weight=0.0, program_boost=0.0, sentence_weight=0.0)


def training_facts(model: str) -> str:
    """Steps, planned steps and seconds per step from the model's training summary ("–" for base)."""
    summary = Path(model) / "training" / "summary.json"
    if not summary.is_file():
        return "–"
    s = json.loads(summary.read_text(encoding="utf-8"))
    return f"{s['steps']} of {s['planned_steps']} planned, {s['seconds_per_step']:.1f} s/step"


def cells(site: Site) -> list[str]:
    """nDCG@10 / answers@1 of dense and served on the development and test halves."""
    out = []
    for half in (site.dev, site.test):
        half = [q for q in half if q.relevant]
        for config in (DENSE, SERVED):
            n, a = score(site, half, config)
            out.append(f"{n:.3f} / {a:.1%}")
    return out


def parse_site(spec: str) -> tuple[str, str, str]:
    """``NAME=CORPUS:set1[,set2]`` → (name, corpus, query sets)."""
    name, rest = spec.split("=", 1)
    corpus, sets = rest.rsplit(":", 1)
    return name, corpus, sets


def table_head(title: str, command: str, preface: str, variant_column: str) -> list[str]:
    """A variants fragment's heading, command, machine, how to read a cell, and the table's header rows."""
    return [
        f"## {title}",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        f"- {preface}Each cell is nDCG@10 / answers@1; dense = the model's ranking alone, served = the served"
        " search at its defaults; halves split by a hash of the query id (as `fusion.py`).",
        "",
        f"| site | {variant_column} | training | dev dense | dev served | test dense | test served |",
        "|---|---|---|---|---|---|---|",
    ]


def variant_row(name: str, corpus: str, sets: str, label: str, model: str, store: Path) -> str:
    """Index ``corpus`` with ``model`` into ``store`` and return the variant's table row (printed too)."""
    build_index(corpus, model, store, progress=False)
    site = open_site(f"{name}={store}:{sets}")
    try:
        row = f"| {name} | {label} | {training_facts(model)} | " + " | ".join(cells(site)) + " |"
    finally:
        site.searcher.close()
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=CORPUS:set1[,set2]")
    parser.add_argument("--model", action="append", required=True, help="SITE:LABEL=MODEL_FOLDER")
    parser.add_argument("--workdir", type=Path, default=Path("runs/recipe-variants"))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    lines = table_head(
        "Training-recipe variants at the default step count (development and test halves)",
        "python benchmarks/recipe_variants.py "
        + " ".join([*("--site " + s for s in args.site), *("--model " + m for m in args.model)]),
        "",
        "variant",
    )
    for spec in args.site:
        name, corpus, sets = parse_site(spec)
        variants = [("base", "base")] + [
            tuple(m.split(":", 1)[1].split("=", 1)) for m in args.model if m.split(":", 1)[0] == name
        ]
        for label, model in variants:
            lines.append(variant_row(name, corpus, sets, label, model, args.workdir / f"{name}-{label}"))
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
