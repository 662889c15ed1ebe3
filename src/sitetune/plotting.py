"""PNG figures for reports: matplotlib on the Agg backend (no display needed), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitetune.atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (servers have no display; the backend is set before the import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, dest: Path) -> None:
    """Write ``fig`` to ``dest`` as a PNG (110 dpi, tight bounds) atomically and close it."""
    plt = pyplot()
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
