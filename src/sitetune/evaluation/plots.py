"""The report's PNG plots (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sitetune.plotting import pyplot, save_png


def metric_bars(metrics: Mapping[str, Mapping[str, float]], title: str, dest: Path) -> None:
    """Grouped bars: one group per metric, one bar per model.

    Args:
        metrics: ``{model_label: {metric: value}}`` for one query set.
        title: Plot title (the query set).
        dest: PNG path.
    """
    plt = pyplot()
    labels = list(metrics)
    names = list(next(iter(metrics.values())))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 4))
    for i, label in enumerate(labels):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [metrics[label][n] for n in names], width=width, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize="small")
    save_png(fig, dest)


def similarity_histogram(same: Sequence[float], other: Sequence[float], title: str, dest: Path) -> None:
    """Overlaid histograms of cosine similarity for same-page and other-page chunk pairs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(list(other), bins=40, range=(-0.2, 1.0), alpha=0.6, density=True, label="other-page pairs")
    ax.hist(list(same), bins=40, range=(-0.2, 1.0), alpha=0.6, density=True, label="same-page pairs")
    ax.set_xlabel("cosine similarity")
    ax.set_title(title)
    ax.legend()
    save_png(fig, dest)


def per_query_scatter(base: Mapping[str, float], tuned: Mapping[str, float], title: str, xlabel: str,
                      ylabel: str, dest: Path) -> None:
    """Per-query nDCG@10 of ``base`` (x) against a tuned model (y); points above the diagonal improved."""
    plt = pyplot()
    ids = [q for q in base if q in tuned]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter([base[q] for q in ids], [tuned[q] for q in ids], s=14, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{xlabel} nDCG@10")
    ax.set_ylabel(f"{ylabel} nDCG@10")
    ax.set_title(title)
    save_png(fig, dest)
