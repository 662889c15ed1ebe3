"""Weight-space interpolation between the base model and a tuned one (WiSE-FT), on two real sites.

A tuned model's weights mixed with the packaged base model's, ``(1 - a) * base + a * tuned`` for each
``a`` in ``--alphas`` (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models": the mix often keeps
the tuned model's gains in its domain and the base model's robustness outside it). Every mix is written as a
model folder under ``--workdir``, indexed and ranked as ``recipe_variants.py`` ranks a recipe variant: its
dense ranking alone and the served search at default settings, on development and test halves. A mix is
worth serving only if it helps on both sites' development halves. Writes
``benchmarks/results/weight_interpolation.md``.

Usage:
    python benchmarks/weight_interpolation.py --site cbs=CBS:cbs,cbs-v2 --site stirling=STIR:stirling \\
        --model cbs=runs/cbs-default --model stirling=runs/stir-default --alphas 0.75,0.5,0.25
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from machine import write_fragment
from recipe_variants import parse_site, table_head, variant_row
from safetensors.torch import load_file, save_file

from sitetune.encode.export import EXPORT_DIRNAME
from sitetune.models import base_model_path

RESULT = Path(__file__).resolve().parent / "results" / "weight_interpolation.md"
WEIGHTS = "model.safetensors"


def interpolate(tuned: Path, alphas: list[float], prefix: Path) -> list[Path]:
    """Write ``tuned``'s folder once per ``alpha`` to ``PREFIX-a<alpha>``, its weights replaced by
    ``(1 - alpha) * base + alpha * tuned``; both weight files are read once."""
    base = load_file(str(base_model_path() / WEIGHTS))
    weights = load_file(str(tuned / WEIGHTS))
    missing = sorted(set(weights) - set(base))
    if missing:
        raise SystemExit(f"{tuned / WEIGHTS}: tensors the base model lacks: {', '.join(missing[:5])}")
    folders = []
    for alpha in alphas:
        out = prefix.with_name(f"{prefix.name}-a{alpha:g}")
        if out.exists():
            shutil.rmtree(out)
        # An export of the tuned weights would be refused as stale; the encoder makes a fresh one.
        shutil.copytree(tuned, out, ignore=shutil.ignore_patterns("checkpoint-*", EXPORT_DIRNAME))
        mixed = {k: ((1 - alpha) * base[k].float() + alpha * w.float()).to(w.dtype) for k, w in weights.items()}
        save_file(mixed, str(out / WEIGHTS), metadata={"format": "pt"})
        folders.append(out)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=CORPUS:set1[,set2]")
    parser.add_argument("--model", action="append", required=True, help="SITE=TUNED_MODEL_FOLDER")
    parser.add_argument("--alphas", default="0.75,0.5,0.25", help="weights of the tuned model, comma-separated")
    parser.add_argument("--workdir", type=Path, default=Path("runs/weight-interpolation"))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    tuned_of = dict(m.split("=", 1) for m in args.model)
    alphas = [float(a) for a in args.alphas.split(",")]

    lines = table_head(
        "Weight-space interpolation of the tuned and base models (development and test halves)",
        "python benchmarks/weight_interpolation.py "
        + " ".join([*("--site " + s for s in args.site), *("--model " + m for m in args.model)])
        + f" --alphas {args.alphas}",
        "a = the tuned model's share of every weight (1: the tuned model, 0: the base model). ",
        "a",
    )
    for spec in args.site:
        name, corpus, sets = parse_site(spec)
        tuned = Path(tuned_of[name])
        mixes = interpolate(tuned, alphas, args.workdir / name)
        models = [("0 (base)", "base"), ("1 (tuned)", str(tuned))]
        models += [(f"{a:g}", str(folder)) for a, folder in zip(alphas, mixes, strict=True)]
        for label, model in models:
            store = args.workdir / "stores" / f"{name}-{label.split()[0]}"
            lines.append(variant_row(name, corpus, sets, label, model, store))
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
