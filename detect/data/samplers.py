"""Sampling and batching of detection samples: repeat-factor sampling (LVIS), aspect-ratio grouped batches
(torchvision's references) and the list collate."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from detect.utils.errors import DetectError, check_choice

SAMPLERS = ("uniform", "repeat_factor")


def check_sampling(sampler: str = "uniform", repeat_threshold: float = 0.1, repeat_sqrt: bool = True) -> None:
    """data.sampler, data.repeat_threshold and data.repeat_sqrt, or a DetectError naming the bad one."""
    check_choice("data.sampler", sampler, SAMPLERS)
    if not isinstance(repeat_threshold, (int, float)) or not 0 < repeat_threshold <= 1:
        raise DetectError(f"data.repeat_threshold={repeat_threshold} must be in (0, 1]: the fraction of the "
                          "training images below which a class is repeated")
    if not isinstance(repeat_sqrt, bool):
        raise DetectError(f"data.repeat_sqrt={repeat_sqrt} must be true or false")


@dataclass(frozen=True)
class RepeatFactors:
    """How often each training image is seen an epoch, from the fraction of images each class appears in."""

    images: np.ndarray  # float64 (N,): image i's repeat factor, >= 1
    class_fraction: dict[int, float]  # label -> fraction of the images with a box of it
    class_factor: dict[int, float]  # label -> its repeat factor


def repeat_factors(image_labels: Sequence[np.ndarray], threshold: float, sqrt: bool = True) -> RepeatFactors:
    """LVIS's repeat factors (Detectron2's `repeat_factors_from_category_frequency`): a class in a fraction f of the
    images repeats r = max(1, sqrt(t / f)) (t / f with `sqrt` false), an image by the largest r of its classes (1
    without boxes)."""
    counts: dict[int, int] = defaultdict(int)
    for labels in image_labels:
        for label in np.unique(labels).tolist():
            counts[label] += 1
    fraction = {label: count / len(image_labels) for label, count in sorted(counts.items())}
    factor = {label: max(1.0, math.sqrt(threshold / f) if sqrt else threshold / f) for label, f in fraction.items()}
    images = np.array([max((factor[label] for label in np.unique(labels).tolist()), default=1.0)
                       for labels in image_labels], dtype=np.float64)
    return RepeatFactors(images, fraction, factor)


class RepeatFactorSampler(Sampler[int]):
    """Image i `factors[i]` times an epoch on average, as Detectron2's RepeatFactorTrainingSampler: the fractional
    part rounds up with that probability, drawn anew each epoch. Every rank draws the same epoch from (seed, epoch),
    shuffles it the same way and takes every `num_replicas`-th index from `rank` on: distinct shards that together
    are the epoch. An epoch is `len(self) * num_replicas` indices, the expected count rounded up (the drawn list
    cycled or cut to it), so that every epoch, and every rank, has as many batches."""

    def __init__(self, factors: np.ndarray, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:
        factors = torch.as_tensor(factors, dtype=torch.float64)
        self.whole, self.fraction = factors.floor(), factors - factors.floor()
        self.num_replicas, self.rank, self.shuffle, self.seed = num_replicas, rank, shuffle, seed
        self.num_samples = math.ceil(float(factors.sum()) / num_replicas)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self) -> torch.Tensor:
        """This epoch's indices over all ranks, in order (rank r's shard is every num_replicas-th from r)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        repeats = self.whole + (torch.rand(len(self.whole), generator=generator, dtype=torch.float64) < self.fraction)
        indices = torch.repeat_interleave(torch.arange(len(self.whole)), repeats.long())
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        total = self.num_samples * self.num_replicas
        return indices.repeat(math.ceil(total / len(indices)))[:total]

    def __iter__(self) -> Iterator[int]:
        yield from self.epoch_indices()[self.rank::self.num_replicas].tolist()

    def __len__(self) -> int:
        return self.num_samples


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
