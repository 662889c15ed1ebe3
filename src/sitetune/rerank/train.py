"""Train the site's cross-encoder: the recipe's anchors, hard negatives mined by the tuned bi-encoder.

For every sampled anchor (title, templated question or cloze sentence of the retrieval pairs) the tuned
bi-encoder ranks every trainable section; the nearest sections of the positive's own page are the
in-page negatives ("the right section of the right page") and the nearest elsewhere, below
``(1 - relative_margin)`` times the positive's score, the cross-page ones. A sentence-transformers
``CrossEncoder`` (one logit) is trained listwise on them with ``CrossEncoderTrainer``: softmax
cross-entropy of the positive against its hard negatives and in-batch negatives
(``cross_encoder.losses.MultipleNegativesRankingLoss``, by default its cached variant in mini-batches of
16 pairs, which caps the step's memory). The result is saved in ``MODEL/reranker``.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sitetune.config import EncoderConfig, RerankInit, RerankTrainConfig
from sitetune.errors import SitetuneError
from sitetune.models import prefer_local_files, resolve_model_path, silence_trainer_log
from sitetune.rerank.base import RERANKER_DIR

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder

#: The training summary written inside the reranker folder.
SUMMARY_FILE = "rerank_training.json"


@dataclass(frozen=True)
class RerankTrainResult:
    """What a reranker training run did.

    Attributes:
        folder: The saved cross-encoder (``MODEL/reranker``).
        steps: Optimizer steps trained.
        anchors: Training rows (anchor, positive, negatives).
        seconds: Wall time of mining and training.
        losses: ``(step, loss)`` as logged.
    """

    folder: Path
    steps: int
    anchors: int
    seconds: float
    losses: list[tuple[int, float]]


def mine_rows(
    dataset: Dataset, bi_encoder: str | Path, config: RerankTrainConfig, n_rows: int
) -> dict[str, list[str]]:
    """Training rows: a seeded sample of anchors with their positive and hard negatives.

    Args:
        dataset: Retrieval pairs (anchor, positive, page, chunk_id[, kind]).
        bi_encoder: The tuned bi-encoder's folder (mines the negatives).
        config: Negatives per anchor and the margin.
        n_rows: Anchors wanted (fewer if the pairs have fewer).

    Returns:
        Columns ``anchor``, ``positive``, ``negative_1`` ... ``negative_k``.
    """
    from sitetune.encode import load_encoder

    for column in ("anchor", "positive", "page", "chunk_id"):
        if column not in dataset.column_names:
            raise SitetuneError(f"the reranker needs retrieval pairs with a {column!r} column")
    anchors, positives = list(dataset["anchor"]), list(dataset["positive"])
    pages, chunk_ids = list(dataset["page"]), list(dataset["chunk_id"])
    # The candidate sections: every distinct positive, with every page it is a positive for.
    doc_of: dict[str, int] = {}
    docs: list[str] = []
    doc_pages: list[set[str]] = []
    for text, page, cid in zip(positives, pages, chunk_ids, strict=True):
        j = doc_of.get(cid)
        if j is None:
            j = doc_of[cid] = len(docs)
            docs.append(text)
            doc_pages.append(set())
        doc_pages[j].add(page)
    order = list(range(len(anchors)))
    random.Random(config.seed).shuffle(order)
    encoder = load_encoder(resolve_model_path(bi_encoder), EncoderConfig(backend="torch"))
    doc_vectors = encoder.encode(docs)
    k = config.in_page_negatives + config.cross_page_negatives
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], **{f"negative_{i + 1}": [] for i in range(k)}}
    batch = 256
    for start in range(0, len(order), batch):
        if len(rows["anchor"]) >= n_rows:
            break
        chosen = order[start : start + batch]
        query_vectors = encoder.encode([encoder.info.query(anchors[i]) for i in chosen])
        sims = query_vectors @ doc_vectors.T
        for row_sims, i in zip(sims, chosen, strict=True):
            negatives = _negatives(row_sims, doc_of[chunk_ids[i]], pages[i], doc_pages, docs, config)
            if len(negatives) < k:
                continue
            rows["anchor"].append(anchors[i])
            rows["positive"].append(positives[i])
            for n, j in enumerate(negatives):
                rows[f"negative_{n + 1}"].append(docs[j])
            if len(rows["anchor"]) >= n_rows:
                break
    return rows


def _negatives(
    sims: np.ndarray, positive: int, page: str, doc_pages: Sequence[set[str]], docs: Sequence[str],
    config: RerankTrainConfig,
) -> list[int]:
    """In-page negatives first (nearest on the positive's page), then cross-page ones; topped up from
    cross-page when the page has too few other sections."""
    ceiling = (1.0 - config.relative_margin) * float(sims[positive])
    in_page: list[int] = []
    cross: list[int] = []
    for j in np.argsort(-sims, kind="stable")[:200]:
        j = int(j)
        if j == positive or docs[j] == docs[positive]:
            continue
        if page in doc_pages[j]:
            if len(in_page) < config.in_page_negatives:
                in_page.append(j)
        elif sims[j] < ceiling and len(cross) < config.in_page_negatives + config.cross_page_negatives:
            cross.append(j)
    want = config.in_page_negatives + config.cross_page_negatives
    return (in_page + cross)[:want]


def listwise_loss(model: CrossEncoder, config: RerankTrainConfig) -> Any:
    """The reranker's loss: softmax cross-entropy of each positive against its negatives.

    The library's ``MultipleNegativesRankingLoss`` for cross-encoders, or with ``config.mini_batch_size`` its
    cached variant, which scores a step's pairs in mini-batches and caches the gradients of the scores (the
    same loss and gradients, a fraction of the activations' memory, two forward passes).
    ``config.in_batch_negatives`` 0 means hard negatives only.
    """
    from sentence_transformers.cross_encoder.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    cached = config.mini_batch_size is not None
    base: Any = CachedMultipleNegativesRankingLoss if cached else MultipleNegativesRankingLoss

    class HardNegativesRankingLoss(base):  # type: ignore[misc]
        def get_in_batch_negatives(self, anchors: list[str], candidates: list[list[str]]) -> Any:
            if not self.num_negatives:  # the library would sample 0 negatives; none is what 0 means here
                return iter(())
            return super().get_in_batch_negatives(anchors, candidates)

    extra = {"mini_batch_size": config.mini_batch_size} if cached else {}
    return HardNegativesRankingLoss(model, num_negatives=config.in_batch_negatives, **extra)


def train_reranker(
    dataset: Dataset,
    bi_encoder: str | Path,
    model_dir: str | Path,
    config: RerankTrainConfig | None = None,
    *,
    progress: bool = False,
) -> RerankTrainResult:
    """Train the cross-encoder and save it in ``model_dir/reranker`` (replacing one there).

    Args:
        dataset: The retrieval recipe's pairs (anchor, positive, page, chunk_id).
        bi_encoder: The tuned bi-encoder that mines the negatives (usually ``model_dir`` itself).
        model_dir: The model folder the reranker is saved in.
        config: Steps, batch, negatives, learning rate.
        progress: Show the trainer's progress bar.

    Raises:
        SitetuneError: The pairs lack the columns mining needs, or no anchor has enough negatives.
    """
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )

    prefer_local_files()
    config = config or RerankTrainConfig()
    started = time.perf_counter()
    rows = mine_rows(dataset, bi_encoder, config, config.steps * config.batch_size)
    if not rows["anchor"]:
        raise SitetuneError("no anchor has enough sections to mine reranker negatives from")
    train_data = HFDataset.from_dict(rows)
    init = resolve_model_path("base" if config.init is RerankInit.BASE else bi_encoder)
    torch.manual_seed(config.seed)
    model = CrossEncoder(str(init), num_labels=1, max_length=config.max_length, local_files_only=True)
    loss = listwise_loss(model, config)
    out = Path(model_dir) / RERANKER_DIR
    with tempfile.TemporaryDirectory(prefix="sitetune-rerank-") as work:
        args = CrossEncoderTrainingArguments(
            output_dir=work,
            max_steps=config.steps,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,
            logging_steps=max(1, config.steps // 8),
            save_strategy="no",
            report_to=[],
            seed=config.seed,
            use_cpu=True,
            disable_tqdm=not progress,
            dataloader_drop_last=False,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=train_data, loss=loss)
        if not progress:
            silence_trainer_log(trainer)
        trainer.train()
        losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    seconds = time.perf_counter() - started
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    summary: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, RerankInit) else v for k, v in asdict(config).items()},
        "init": str(init),
        "bi_encoder": str(bi_encoder),
        "anchors": len(rows["anchor"]),
        "steps": config.steps,
        "seconds": round(seconds, 1),
        "losses": losses,
    }
    (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return RerankTrainResult(out, config.steps, len(rows["anchor"]), seconds, losses)


#: The reranker's loss curve, inside its folder (linked from the model card's section).
LOSS_FIGURE = "loss.png"


def write_card_section(model_dir: str | Path, result: RerankTrainResult) -> None:
    """Append the reranker's section (recipe, loss table, loss figure) to the model folder's README.md."""
    from sitetune.plotting import pyplot as _pyplot
    from sitetune.plotting import save_png as _save

    folder = Path(result.folder)
    if result.losses:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([s for s, _ in result.losses], [v for _, v in result.losses], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("listwise loss")
        ax.set_title("reranker training loss")
        _save(fig, folder / LOSS_FIGURE)
    rows = "\n".join(f"| {s} | {v:.4f} |" for s, v in result.losses)
    text = (
        "\n## Reranker\n\n"
        f"`{RERANKER_DIR}/` holds a cross-encoder (sentence-transformers `CrossEncoder`, one logit) trained on "
        f"this site after the bi-encoder: {result.anchors} of the recipe's anchors, each against its section, "
        "the tuned bi-encoder's nearest other sections of the same page and of other pages, and in-batch "
        f"negatives (listwise softmax cross-entropy), {result.steps} steps in {result.seconds:.0f} s. Search "
        "uses it when `SearchConfig.rerank_weight` > 0 (see docs/search.md).\n\n"
        "| step | loss |\n|---:|---:|\n" + rows + "\n"
        + (f"\n![reranker loss]({RERANKER_DIR}/{LOSS_FIGURE})\n" if result.losses else "")
    )
    card = Path(model_dir) / "README.md"
    with card.open("a", encoding="utf-8") as fh:
        fh.write(text)
