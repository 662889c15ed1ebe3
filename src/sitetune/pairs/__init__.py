"""Training pairs for both recipes, and the pairs folder they are stored in.

- :func:`build_card_pairs`: the published model's labelled pairs, rebuilt exactly.
- :func:`build_retrieval_pairs`: query-like anchors -> section text for contrastive training (default).
- :func:`save_pairs` / :func:`load_pairs`: the folder ``sitetune train --pairs`` and
  ``sitetune evaluate --split-from`` read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sitetune.config import CARD_PAIRS, RETRIEVAL_PAIRS, PairsConfig, Recipe
from sitetune.pairs.card import build_card_pairs
from sitetune.pairs.retrieval import DOCUMENT_TEMPLATE, build_retrieval_pairs
from sitetune.pairs.storage import Pairs, check_pairs_folder, load_pairs, read_info, save_pairs
from sitetune.records import SectionRecord

__all__ = [
    "DOCUMENT_TEMPLATE",
    "Pairs",
    "build_card_pairs",
    "build_pairs",
    "build_retrieval_pairs",
    "check_pairs_folder",
    "default_pairs_config",
    "load_pairs",
    "read_info",
    "save_pairs",
]


def default_pairs_config(recipe: Recipe) -> PairsConfig:
    """The preset pairs config of ``recipe``."""
    return CARD_PAIRS if Recipe(recipe) is Recipe.CARD else RETRIEVAL_PAIRS


def build_pairs(records: Sequence[SectionRecord], config: PairsConfig) -> Pairs:
    """Build ``config.recipe``'s pairs from corpus records."""
    if config.recipe is Recipe.CARD:
        return build_card_pairs(records, config)
    return build_retrieval_pairs(records, config)
