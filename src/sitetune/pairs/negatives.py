"""Hard negatives for the retrieval pairs, mined with the base model.

``sentence_transformers.util.mine_hard_negatives`` with a relative margin: a candidate counts only if it
scores below ``(1 - margin)`` times the positive, which filters most unlabelled true answers (false
negatives) out of the "hard" set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset


def add_hard_negatives(dataset: Dataset, corpus_docs: list[str], *, relative_margin: float = 0.05) -> Dataset:
    """Add a ``negative`` column (after ``positive``); rows without a usable negative are dropped.

    Args:
        dataset: Rows with anchor, positive and bookkeeping columns (anchors unique).
        corpus_docs: Every trainable document, in the positive's format.
        relative_margin: See the module docstring.

    Returns:
        The dataset with columns anchor, positive, negative, then the bookkeeping columns.
    """
    from datasets import Dataset as HFDataset
    from sentence_transformers.util import mine_hard_negatives

    from sitetune.models import load_sentence_transformer

    model = load_sentence_transformer("base")
    model.max_seq_length = 256
    mined = mine_hard_negatives(
        dataset.select_columns(["anchor", "positive"]),
        model,
        corpus=corpus_docs,
        relative_margin=relative_margin,
        range_max=20,
        num_negatives=1,
        sampling_strategy="top",
        output_format="triplet",
        batch_size=64,
        verbose=False,
    )
    extra = [c for c in dataset.column_names if c not in ("anchor", "positive")]
    index = {a: i for i, a in enumerate(dataset["anchor"])}
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": [], **{c: [] for c in extra}}
    for row in mined:
        i = index.get(row["anchor"])
        if i is None:
            continue
        rows["anchor"].append(row["anchor"])
        rows["positive"].append(row["positive"])
        rows["negative"].append(row["negative"])
        for c in extra:
            rows[c].append(dataset[i][c])
    return HFDataset.from_dict(rows)
