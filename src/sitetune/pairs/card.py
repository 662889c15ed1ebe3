"""The published model's training pairs, rebuilt exactly.

80/20 split of the corpus rows with scikit-learn (``random_state=42``); every within-page pair of train
rows is a positive (1.0); per page, ``min(3, n)`` seeded random pairs of (a row of the page, a row of
another page) are negatives (0.0). On the reference corpus: 1,314 train rows, 13,697 pairs, 13,360 positive,
337 negative. Texts are ``SectionRecord.card_text()`` ("page_name: <page>text: <chunk>").
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from sitetune.config import CARD_PAIRS, PairsConfig, Recipe
from sitetune.errors import InputError
from sitetune.pairs.storage import Pairs
from sitetune.records import SectionRecord


def split_rows(
    records: Sequence[SectionRecord], config: PairsConfig = CARD_PAIRS
) -> tuple[list[SectionRecord], list[SectionRecord]]:
    """The published row split: ``train_test_split(rows, test_size=0.2, random_state=42)``.

    Returns:
        (train rows, held-out rows), each in the order scikit-learn returns them.
    """
    from sklearn.model_selection import train_test_split

    train, held = train_test_split(list(records), test_size=config.test_size, random_state=config.split_seed)
    return list(train), list(held)


def build_card_pairs(records: Sequence[SectionRecord], config: PairsConfig = CARD_PAIRS) -> Pairs:
    """Build the card recipe's labelled pairs.

    Args:
        records: Every corpus row (duplicates kept: the published set counts rows, not unique texts).
        config: Split and negative-sampling settings (the defaults reproduce the published set).

    Returns:
        Pairs whose dataset has columns sentence_0, sentence_1, label.

    Raises:
        InputError: Fewer than two pages (no negative pairs are possible) or too few rows to split.
    """
    from datasets import Dataset

    pages = {r.page_name for r in records}
    if len(pages) < 2:
        raise InputError(f"the card recipe needs at least two pages, the corpus has {len(pages)}")
    if len(records) < 5:
        raise InputError(
            f"the card recipe needs at least 5 rows to split 80/20, the corpus has {len(records)}"
        )
    train, held = split_rows(records, config)
    by_page: dict[str, list[SectionRecord]] = {}
    for r in train:
        by_page.setdefault(r.page_name, []).append(r)
    if len(by_page) < 2:
        raise InputError(
            "after the 80/20 split the train rows cover fewer than two pages: too small a corpus"
        )

    first: list[str] = []
    second: list[str] = []
    labels: list[float] = []
    for rows in by_page.values():
        for a, b in itertools.combinations(rows, 2):
            first.append(a.card_text())
            second.append(b.card_text())
            labels.append(1.0)
    positives = len(labels)
    rng = random.Random(config.seed)
    for page, rows in by_page.items():
        others = [r for r in train if r.page_name != page]
        for _ in range(min(config.negatives_per_page, len(rows))):
            first.append(rng.choice(rows).card_text())
            second.append(rng.choice(others).card_text())
            labels.append(0.0)
    dataset = Dataset.from_dict({"sentence_0": first, "sentence_1": second, "label": labels})
    negatives = len(labels) - positives
    info = {
        "recipe": Recipe.CARD.value,
        "split": "rows",
        "pairs": len(labels),
        "positives": positives,
        "negatives": negatives,
        "label_mean": round(sum(labels) / len(labels), 6),
        "train_rows": len(train),
        "heldout_rows": len(held),
        "pages": len(pages),
        "train_pages": len(by_page),
        "test_size": config.test_size,
        "split_seed": config.split_seed,
        "seed": config.seed,
    }
    return Pairs(recipe=Recipe.CARD, dataset=dataset, heldout=held, info=info)
