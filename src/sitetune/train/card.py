"""The card recipe's set-up: the published model's architecture, loss and batches.

Transformer + mean Pooling with no Normalize module (the published architecture; the packaged
all-MiniLM-L6-v2 ends in Normalize, which is dropped), max_seq_length 512, CosineSimilarityLoss (MSE
between cosine and label), plain shuffled batches of 16. The loss is computed over length-sorted mini-batches
by default (:class:`~sitetune.train.losses.LengthSortedCosineLoss`: same loss and gradient, half the padded
tokens); ``--loss cosine_mse`` runs sentence-transformers' own class.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from sitetune.config import TrainConfig
from sitetune.modelinfo import CARD_MODEL_INFO
from sitetune.pairs.storage import Pairs
from sitetune.train.core import Plan
from sitetune.train.losses import LengthSortedCosineLoss
from sitetune.train.samplers import SeededBatchSampler


def card_model(base: str | Path, max_seq_length: int) -> object:
    """The base model rebuilt as Transformer + mean Pooling (no Normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from sitetune.errors import SitetuneError
    from sitetune.models import base_model_label, fit_max_seq_length, is_hub_id, load_sentence_transformer

    loaded = load_sentence_transformer(base)
    modules: list[Any] = list(loaded)
    transformer = modules[0]
    pooling = next((m for m in modules if isinstance(m, Pooling)), None)
    if pooling is None:
        raise SitetuneError(f"{base}: the base model has no Pooling module")
    if pooling.get_config_dict().get("pooling_mode") not in (None, "mean"):
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    model.max_seq_length = fit_max_seq_length(model, max_seq_length)
    if str(base) == "base" or is_hub_id(base):  # the card links it on the Hub; a folder is named by core
        model.model_card_data.base_model = base_model_label(base)
    return model


def card_plan(pairs: Pairs, config: TrainConfig, *, base: str | Path = "base") -> Plan:
    """Model, loss and batches for the card recipe."""
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    from sitetune.errors import SitetuneError
    from sitetune.models import base_model_label

    model = card_model(base, config.max_seq_length)
    dataset = pairs.dataset.select_columns(["sentence_0", "sentence_1", "label"])
    loss: Any
    if config.loss == "sorted_cosine_mse":
        loss = LengthSortedCosineLoss(model, mini_batch_size=config.mini_batch_size)
    elif config.loss == "cosine_mse":
        loss = CosineSimilarityLoss(model)  # type: ignore[arg-type]
    else:
        raise SitetuneError(f"the card recipe trains with sorted_cosine_mse or cosine_mse, not {config.loss!r}")
    return Plan(
        model=model,  # type: ignore[arg-type]
        loss=loss,
        dataset=dataset,
        sampler=functools.partial(SeededBatchSampler),
        batch_sampler_name="batch_sampler",
        model_info=replace(CARD_MODEL_INFO, base_model=base_model_label(base)),
    )
