"""The retrieval recipe's set-up: in-batch-negatives contrastive training on query-like anchors.

MultipleNegativesRankingLoss over (anchor, positive[, hard negative]) rows: each anchor must rank its own
section above every other section in the batch. By default it is computed by
:class:`~sitetune.train.losses.LengthSortedMNRLoss` (same loss, less padding, one forward pass); ``mnrl``
and ``cached_mnrl`` are sentence-transformers' own. The page-aware sampler keeps duplicate
texts and same-page sections out of a batch (they would be false negatives). The model keeps the base
architecture (Normalize included) and is told its document template through ``sitetune.json``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.config import TrainConfig
from sitetune.errors import SitetuneError
from sitetune.modelinfo import ModelInfo
from sitetune.pairs.retrieval import DOCUMENT_TEMPLATE
from sitetune.pairs.storage import Pairs
from sitetune.train.core import Plan
from sitetune.train.losses import LengthSortedMNRLoss
from sitetune.train.samplers import PageAwareBatchSampler

if TYPE_CHECKING:
    from torch import nn

TEXT_COLUMNS = ("anchor", "positive", "negative")


def retrieval_plan(pairs: Pairs, config: TrainConfig, *, base: str | Path = "base") -> Plan:
    """Model, loss and batches for the retrieval recipe."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from sitetune.models import base_model_label, fit_max_seq_length, is_hub_id, load_sentence_transformer

    data = pairs.dataset
    text_columns = [c for c in TEXT_COLUMNS if c in data.column_names]
    pages = data["page"] if "page" in data.column_names else [str(i) for i in range(len(data))]
    chunk_ids = data["chunk_id"] if "chunk_id" in data.column_names else [""] * len(data)
    columns = {c: data[c] for c in text_columns}
    keys = [
        frozenset({*(f"t:{columns[c][i]}" for c in text_columns), f"c:{chunk_ids[i]}"} - {"c:"})
        for i in range(len(data))
    ]
    lengths = [len(p) for p in columns["positive"]]
    dataset = data.select_columns(text_columns)

    model = load_sentence_transformer(base)
    model.max_seq_length = fit_max_seq_length(model, config.max_seq_length)
    label = base_model_label(base)
    if str(base) == "base" or is_hub_id(base):  # the card links it on the Hub; a folder is named below
        model.model_card_data.base_model = label
    loss: nn.Module
    if config.loss == "cached_mnrl":
        loss = CachedMultipleNegativesRankingLoss(
            model, scale=config.scale, mini_batch_size=config.mini_batch_size
        )
    elif config.loss == "mnrl":
        loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    elif config.loss == "sorted_mnrl":
        loss = LengthSortedMNRLoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size)
    else:
        raise SitetuneError(
            f"the retrieval recipe trains with sorted_mnrl, mnrl or cached_mnrl, not {config.loss!r}"
        )
    sampler = functools.partial(
        PageAwareBatchSampler, pages=pages, keys=keys, lengths=lengths, page_cap=config.page_cap
    )
    return Plan(
        model=model,
        loss=loss,
        dataset=dataset,
        sampler=sampler,
        batch_sampler_name="no_duplicates",
        save_max_seq_length=(
            None if config.save_max_seq_length is None else fit_max_seq_length(model, config.save_max_seq_length)
        ),
        model_info=ModelInfo(document_template=DOCUMENT_TEMPLATE, recipe="retrieval", base_model=label),
    )
