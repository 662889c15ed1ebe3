"""How well the signpost signal tells signposts from sections that answer, on hand-labelled sections of three sites.

The labels (``sitetune/data/labels/section_kinds.json``: a random 100 sections of the sample site, CBS and
Stirling, each labelled answer / signpost / testimonial by reading it) score
:func:`sitetune.sectionkind.section_features` + a logistic model. Two fits are reported:

- **leave one site out**: the model fitted on the other two sites' labels and scored on the third, the
  honest figure for a site sitetune has never seen;
- **served**: the weights in ``sitetune.sectionkind.SIGNPOST_WEIGHTS``, fitted on all three sites (``--fit``
  prints them), scored on each site (a figure on the data it was fitted on: shown, not claimed).

A signpost is the positive class; testimonials count as not-signposts (they are demoted by neither rule).
Writes ``benchmarks/results/section_kinds.md``.

Usage:
    python benchmarks/section_kinds.py --site sample=runs/sites/sample.jsonl \\
        --site cbs=../shared/data/cbs_graduate_programs.csv --site stirling=runs/sites/stirling.jsonl [--fit]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
from machine import describe_machine, write_fragment

from sitetune.corpus import Corpus
from sitetune.sectionkind import (
    FEATURE_NAMES,
    SIGNPOST_WEIGHTS,
    TESTIMONIAL_SHARE,
    first_person_share,
    section_features,
    signpost_probability,
)

RESULT = Path(__file__).resolve().parent / "results" / "section_kinds.md"
#: L2 strength of the fit (features are on comparable scales; a small model on a few hundred labels).
L2 = 1.0


def labelled(
    spec: str, labels: dict[str, dict[str, str]]
) -> tuple[str, np.ndarray, np.ndarray, list, np.ndarray, np.ndarray]:
    """``name=CORPUS`` → (name, feature matrix, is-signpost, features, is-testimonial, first-person share)."""
    name, path = spec.split("=", 1)
    corpus = Corpus.load(path)
    feats = section_features(corpus.chunks)
    by_id = {c.chunk_id: i for i, c in enumerate(corpus.chunks)}
    site_labels = labels[name]["labels"]
    missing = [cid for cid in site_labels if cid not in by_id]
    if missing:
        raise SystemExit(f"{name}: {len(missing)} labelled chunk ids are not in {path} (re-crawled?)")
    rows = [by_id[cid] for cid in site_labels]
    x = np.asarray([feats[i].vector() for i in rows])
    y = np.asarray([site_labels[cid] == "signpost" for cid in site_labels], dtype=float)
    testimonial = np.asarray([site_labels[cid] == "testimonial" for cid in site_labels], dtype=float)
    share = np.asarray([first_person_share(corpus.chunks[i].text) for i in rows])
    return name, x, y, [feats[i] for i in rows], testimonial, share


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 3000) -> np.ndarray:
    """L2-regularised logistic regression by gradient descent, classes weighted to balance; weights + intercept."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    pos = max(y.mean(), 1e-6)
    sample_w = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ ((p - y) * sample_w) / len(y) + l2 * np.r_[w[:-1], 0.0] / len(y)
        w -= 0.5 * grad
    return w


def scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, F1) of "signpost" at probability 0.5."""
    pred = p >= 0.5
    tp = float((pred & (y == 1)).sum())
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / (y == 1).sum() if (y == 1).sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=CORPUS (NAME as in the labels file)")
    parser.add_argument("--fit", action="store_true", help="print the weights fitted on all sites")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    labels = json.loads((files("sitetune.data") / "labels" / "section_kinds.json").read_text(encoding="utf-8"))
    sites = [labelled(spec, labels["sites"]) for spec in args.site]
    if args.fit:
        w = fit(np.vstack([s[1] for s in sites]), np.concatenate([s[2] for s in sites]))
        print("SIGNPOST_WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in w) + ")")
        for name, value in zip([*FEATURE_NAMES, "intercept"], w, strict=True):
            print(f"  {name}: {value:+.3f}")
        return
    rows, testimonial_rows = [], []
    for i, (name, x, y, feats, testimonial, share) in enumerate(sites):
        rest = [s for j, s in enumerate(sites) if j != i]
        w = fit(np.vstack([s[1] for s in rest]), np.concatenate([s[2] for s in rest]))
        p_out = 1 / (1 + np.exp(-(np.hstack([x, np.ones((len(x), 1))]) @ w)))
        p_served = np.asarray([signpost_probability(f) for f in feats])
        lo, served = scores(y, p_out), scores(y, p_served)
        rows.append(f"| {name} | {len(y)} | {int(y.sum())} | " + " | ".join(f"{v:.2f}" for v in (*lo, *served)) + " |")
        flagged = (share >= TESTIMONIAL_SHARE).astype(float)
        tp, positives = int((flagged * testimonial).sum()), int(testimonial.sum())
        testimonial_rows.append(f"| {name} | {len(y)} | {positives} | {int(flagged.sum())} | {tp} | "
                                + " | ".join(f"{v:.2f}" for v in scores(testimonial, flagged)) + " |")
    write_fragment(args.out, [
        "## The signpost signal against hand labels (three sites)",
        "",
        "- Command: `python benchmarks/section_kinds.py " + " ".join("--site " + s for s in args.site) + "`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Labels: `sitetune/data/labels/section_kinds.json` (a random 100 sections per site, all 64 of the"
        " sample site; one judge who did not see the classifier). Positive class: signpost; at probability 0.5.",
        f"- Features: {', '.join(FEATURE_NAMES)} (`sitetune.sectionkind`); served weights: "
        f"{', '.join(f'{v:.2f}' for v in SIGNPOST_WEIGHTS)}.",
        "",
        "| site | labelled | signposts | left out: precision | recall | F1 | served: precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Testimonials: a section whose statements are at least {TESTIMONIAL_SHARE:.0%} first-person singular"
        " words (`sitetune.sectionkind.first_person_share`; the share was chosen on these labels, so this is"
        " a figure on the data it was chosen on).",
        "",
        "| site | labelled | testimonials | flagged | flagged and testimonial | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *testimonial_rows,
    ])


if __name__ == "__main__":
    main()
