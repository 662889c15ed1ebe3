"""Batch samplers: deterministic per epoch (so a resumed run sees the same batches) and recorded.

- :class:`SeededBatchSampler`: the card recipe's plain shuffled batches. Epoch ``e`` uses the
  ``(e+1)``-th permutation of a generator seeded with the run's seed, the same order torch's
  ``RandomSampler`` gives an uninterrupted run, but recomputable after a restart.
- :class:`PageAwareBatchSampler`: the retrieval recipe's batches. In-batch negatives must be negatives:
  a batch holds no text twice (anchor, positive or negative), no chunk twice, and at most ``page_cap``
  rows of one page (sections of one page are near neighbours, so as negatives they are often false).
  Rows inside a batch are sorted by section length, so the mini-batches of ``cached_mnrl`` pad little
  (the default ``sorted_mnrl`` sorts each column by its own token counts anyway).

Both report each batch to a :class:`BatchRecorder` so the batch log can say which rows formed each step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler


class BatchRecorder:
    """Remembers the rows of every batch a sampler yields, keyed by (epoch, position in the epoch)."""

    def __init__(self) -> None:
        self.batches: dict[tuple[int, int], list[int]] = {}

    def record(self, epoch: int, position: int, rows: list[int]) -> None:
        self.batches[(epoch, position)] = list(rows)

    def get(self, epoch: int, position: int) -> list[int] | None:
        return self.batches.get((epoch, position))


class _PlannedBatchSampler(DefaultBatchSampler):
    """A batch sampler whose batches of an epoch are recomputable (``plan``) and reported to a recorder.

    Recomputable batches are what let a resumed run replay the exact batches of an interrupted one.
    """

    num_rows: int
    recorder: BatchRecorder | None

    def plan(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, in order."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        for position, rows in enumerate(self.plan(epoch)):
            if self.recorder is not None:
                self.recorder.record(epoch, position, rows)
            yield rows

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_rows // self.batch_size
        return math.ceil(self.num_rows / self.batch_size)


class SeededBatchSampler(_PlannedBatchSampler):
    """Shuffled fixed-size batches, recomputable per epoch.

    Args:
        dataset: The training rows.
        batch_size: Rows per batch; the last batch is smaller unless ``drop_last``.
        drop_last: Drop the last short batch.
        seed: The run's seed.
        recorder: Where yielded batches are reported.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        *,
        seed: int = 0,
        recorder: BatchRecorder | None = None,
        **_: Any,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, seed=seed)
        self.num_rows = len(dataset)
        self.recorder = recorder

    def order(self, epoch: int) -> list[int]:
        """Row order of ``epoch``."""
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        for _ in range(epoch):
            torch.randperm(self.num_rows, generator=generator)
        return [int(i) for i in torch.randperm(self.num_rows, generator=generator)]

    def plan(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``: its row order cut into ``batch_size`` slices."""
        order = self.order(epoch)
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(len(self))]


class PageAwareBatchSampler(_PlannedBatchSampler):
    """Batches without duplicate texts or chunks and with at most ``page_cap`` rows per page.

    Args:
        dataset: The training rows (only its length is used: texts come in ``keys``).
        batch_size: Rows per batch.
        drop_last: Drop the last short batch.
        pages: Each row's page.
        keys: Each row's identities that must not repeat in a batch (its texts and chunk id).
        lengths: Each row's size (characters of its positive), for sorting inside a batch.
        page_cap: Rows of one page allowed in a batch.
        seed: The run's seed; epoch ``e`` shuffles with ``seed + e``.
        recorder: Where yielded batches are reported.

    Every epoch has exactly ``len(self)`` batches: once no batch can be filled under the rules, the
    remaining rows are packed with the page rule dropped, then (rarely) with duplicates allowed.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        *,
        pages: Sequence[str],
        keys: Sequence[frozenset[str]],
        lengths: Sequence[int],
        page_cap: int = 1,
        seed: int = 0,
        recorder: BatchRecorder | None = None,
        **_: Any,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, seed=seed)
        if not len(pages) == len(keys) == len(lengths) == len(dataset):
            raise ValueError("pages, keys and lengths must have one entry per dataset row")
        self.pages = list(pages)
        self.keys = list(keys)
        self.lengths = list(lengths)
        self.page_cap = max(1, page_cap)
        self.num_rows = len(dataset)
        self.recorder = recorder

    def plan(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, in order."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        remaining = [int(i) for i in torch.randperm(self.num_rows, generator=generator)]
        batches: list[list[int]] = []
        for strict_pages, strict_keys in ((True, True), (False, True), (False, False)):
            while len(remaining) >= self.batch_size or (remaining and not strict_keys):
                batch, remaining = self._fill(remaining, strict_pages, strict_keys)
                if len(batch) < self.batch_size and (strict_pages or strict_keys):
                    remaining = batch + remaining  # could not fill under these rules: relax them
                    break
                batches.append(batch)
            if not remaining:
                break
        if remaining and not self.drop_last:
            batches.append(remaining)
        batches = batches[: len(self)]
        return [sorted(b, key=lambda i: self.lengths[i]) for b in batches]

    def _fill(self, order: list[int], strict_pages: bool, strict_keys: bool) -> tuple[list[int], list[int]]:
        batch: list[int] = []
        rest: list[int] = []
        seen: set[str] = set()
        per_page: dict[str, int] = {}
        for i in order:
            if len(batch) == self.batch_size:
                rest.append(i)
                continue
            if strict_keys and not seen.isdisjoint(self.keys[i]):
                rest.append(i)
                continue
            if strict_pages and per_page.get(self.pages[i], 0) >= self.page_cap:
                rest.append(i)
                continue
            batch.append(i)
            seen.update(self.keys[i])
            per_page[self.pages[i]] = per_page.get(self.pages[i], 0) + 1
        return batch, rest

