"""The pairs folder: a Hugging Face dataset, the held-out records and ``pairs_info.json``.

Layout (the evaluation stage reads ``heldout.jsonl`` and ``pairs_info.json`` for ``--split-from``)::

    DIR/train/            datasets.Dataset.save_to_disk
    DIR/heldout.jsonl     held-out section records (sitetune.recordio)
    DIR/pairs_info.json   {"recipe", "split", "pairs", ...}

The folder is written whole or not at all (:func:`sitetune.atomic.atomic_dir`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitetune.atomic import atomic_dir
from sitetune.config import Recipe
from sitetune.errors import InputError, SitetuneError
from sitetune.records import SectionRecord

if TYPE_CHECKING:
    from datasets import Dataset

INFO_FILE = "pairs_info.json"
HELDOUT_FILE = "heldout.jsonl"
TRAIN_DIR = "train"
#: Columns a recipe's dataset must hold, in order (extra bookkeeping columns may follow).
RECIPE_COLUMNS: dict[Recipe, tuple[str, ...]] = {
    Recipe.CARD: ("sentence_0", "sentence_1", "label"),
    Recipe.RETRIEVAL: ("anchor", "positive"),
}


@dataclass
class Pairs:
    """Training pairs with what they were built from.

    Attributes:
        recipe: The recipe they belong to.
        dataset: The training rows (card: sentence_0, sentence_1, label; retrieval: anchor, positive
            [, negative], page, chunk_id, kind).
        heldout: Records kept out of training (row split for the card, page split for retrieval).
        info: Everything written to ``pairs_info.json`` (recipe, split, counts).
    """

    recipe: Recipe
    dataset: Dataset
    heldout: list[SectionRecord]
    info: dict[str, Any] = field(default_factory=dict)


def check_pairs_folder(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse an existing ``out`` unless ``overwrite``: call it before building pairs, not only when saving.

    Raises:
        SitetuneError: ``out`` exists and ``overwrite`` is False.
    """
    if Path(out).exists() and not overwrite:
        raise SitetuneError(f"{out} already exists (pass `overwrite=True` to replace it)")


def save_pairs(pairs: Pairs, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a pairs folder atomically.

    Args:
        pairs: What to write.
        out: The folder; an existing one is refused unless ``overwrite``.
        overwrite: Replace an existing folder (only once the new one is complete).

    Returns:
        The folder's path.
    """
    from sitetune.recordio import write_records

    out = Path(out)
    check_pairs_folder(out, overwrite=overwrite)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        pairs.dataset.save_to_disk(str(tmp / TRAIN_DIR))
        write_records(pairs.heldout, tmp / HELDOUT_FILE)
        (tmp / INFO_FILE).write_text(
            json.dumps(pairs.info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return out


def read_info(folder: str | Path) -> dict[str, Any]:
    """Read and check ``pairs_info.json``; a folder that is not a pairs folder is an error."""
    folder = Path(folder)
    path = folder / INFO_FILE
    if not folder.is_dir():
        raise InputError(
            "no such pairs folder (build one with `sitetune pairs CORPUS --out DIR`)", path=str(folder)
        )
    if not path.is_file():
        raise InputError(
            f"not a pairs folder: no {INFO_FILE} (build one with `sitetune pairs`)", path=str(folder)
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"broken JSON: {exc.msg}", path=str(path)) from exc
    if not isinstance(info, dict) or info.get("recipe") not in {r.value for r in Recipe}:
        raise InputError("no valid 'recipe' entry", path=str(path), field="recipe")
    return info


def load_pairs(folder: str | Path, *, recipe: Recipe | None = None) -> Pairs:
    """Load a pairs folder, checking it belongs to ``recipe``.

    Args:
        folder: A folder written by :func:`save_pairs`.
        recipe: The recipe that will train on it; a folder built for another recipe is refused.

    Raises:
        InputError: The folder is missing, incomplete, or holds another recipe's pairs.
    """
    from datasets import load_from_disk

    from sitetune.recordio import read_records

    folder = Path(folder)
    info = read_info(folder)
    found = Recipe(info["recipe"])
    if recipe is not None and found is not recipe:
        raise InputError(
            f"holds {found.value}-recipe pairs, but `recipe={recipe.value}` was asked for: rebuild with "
            f"`sitetune pairs CORPUS --recipe {recipe.value} --out DIR` or pass `recipe={found.value}`",
            path=str(folder),
        )
    if not (folder / TRAIN_DIR).is_dir():
        raise InputError(f"incomplete pairs folder: no {TRAIN_DIR}/ dataset", path=str(folder))
    try:
        dataset = load_from_disk(str(folder / TRAIN_DIR))
    except Exception as exc:  # datasets raises several types for a damaged folder
        raise InputError(f"cannot read the dataset: {exc}", path=str(folder / TRAIN_DIR)) from exc
    columns = tuple(dataset.column_names)
    expected = RECIPE_COLUMNS[found]
    if columns[: len(expected)] != expected:
        raise InputError(
            f"dataset columns {list(columns)} do not start with {list(expected)}", path=str(folder)
        )
    if len(dataset) == 0:
        raise InputError("the pairs dataset is empty", path=str(folder))
    heldout_path = folder / HELDOUT_FILE
    heldout = read_records(heldout_path) if heldout_path.is_file() else []
    return Pairs(recipe=found, dataset=dataset, heldout=heldout, info=info)

