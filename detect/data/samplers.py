"""Batching of detection samples: aspect-ratio grouped batches (torchvision's references) and the list collate."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler


def aspect_ratio_groups(aspect_ratios: Sequence[float], group_factor: int) -> list[int]:
    """Bin aspect ratios into 2 * group_factor + 2 groups on a log scale from 1/2 to 2 (torchvision's binning)."""
    bins = 2 ** np.linspace(-1, 1, 2 * group_factor + 1)
    return np.digitize(aspect_ratios, bins).tolist()


class GroupedBatchSampler(BatchSampler):
    """Batches whose images share an aspect-ratio group, so padding to the batch's largest image wastes little.

    Yields `len(sampler) // batch_size` batches; the last few mix groups from what is left over. The next epoch
    starts at batch `start_batch` (then at 0 again): a run resumed mid-epoch sees the rest of that epoch's order.
    """

    def __init__(self, sampler: Sampler[int], group_ids: Sequence[int], batch_size: int) -> None:
        super().__init__(sampler, batch_size, drop_last=True)
        self.group_ids = group_ids
        self.start_batch = 0

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start_batch = self.start_batch, 0
        yield from itertools.islice(self._batches(), start, None)

    def _batches(self) -> Iterator[list[int]]:
        buffers: dict[int, list[int]] = defaultdict(list)
        for index in self.sampler:
            buffer = buffers[self.group_ids[index]]
            buffer.append(index)
            if len(buffer) == self.batch_size:
                yield buffer.copy()
                buffer.clear()
        leftovers = [index for group in sorted(buffers) for index in buffers[group]]
        for start in range(0, len(leftovers) - self.batch_size + 1, self.batch_size):
            yield leftovers[start:start + self.batch_size]

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images of different sizes as a list: the model batches them after resizing."""
    images, targets = zip(*batch)
    return list(images), list(targets)
