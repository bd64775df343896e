"""Repeat-factor sampling: LVIS's factors on a hand-made dataset, the sampler's frequencies, DDP shards, bad input."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from detect.data.datamodule import CocoDataModule
from detect.data.samplers import RepeatFactorSampler, repeat_factors
from detect.utils.errors import DetectError

# 100 images: class 1 in 90 of them, class 2 in 4 (with class 1), class 3 in 20, 10 images without boxes
LABELS = ([np.array([1, 1, 2])] * 4 + [np.array([1, 3])] * 20 + [np.array([1])] * 66
          + [np.zeros(0, dtype=np.int64)] * 10)


@pytest.mark.parametrize("sqrt", [True, False])
def test_factors_follow_the_lvis_formula(sqrt: bool) -> None:
    t = 0.3
    factors = repeat_factors(LABELS, t, sqrt=sqrt)
    assert factors.class_fraction == pytest.approx({1: 0.9, 2: 0.04, 3: 0.2})
    rule = (lambda f: max(1.0, math.sqrt(t / f))) if sqrt else (lambda f: max(1.0, t / f))
    assert factors.class_factor == pytest.approx({1: 1.0, 2: rule(0.04), 3: rule(0.2)})
    expected = [rule(0.04)] * 4 + [rule(0.2)] * 20 + [1.0] * 76  # the rarest class of an image; 1 without boxes
    np.testing.assert_allclose(factors.images, expected)


def test_each_image_comes_as_often_as_its_factor_on_average() -> None:
    factors = repeat_factors(LABELS, 0.3).images  # 2.74 and 1.22: fractional parts drawn each epoch
    sampler = RepeatFactorSampler(factors, seed=5)
    counts = np.zeros(len(factors))
    epochs = 2000
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        epoch_indices = list(sampler)
        assert len(epoch_indices) == len(sampler) == math.ceil(factors.sum())
        counts += np.bincount(epoch_indices, minlength=len(factors))
    per_epoch = counts / epochs
    for group in (slice(0, 4), slice(4, 24), slice(24, 100)):  # the epoch is cycled to 112 from 111.4 on average
        assert per_epoch[group].mean() == pytest.approx(factors[group].mean(), rel=0.02)
    np.testing.assert_allclose(per_epoch, factors, rtol=0.05)


def test_two_ranks_take_distinct_shards_of_one_shared_epoch() -> None:
    factors = repeat_factors(LABELS, 0.3).images
    ranks = [RepeatFactorSampler(factors, num_replicas=2, rank=rank, seed=7) for rank in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(3)
    full = ranks[0].epoch_indices()
    assert torch.equal(full, ranks[1].epoch_indices())  # the epoch is drawn from (seed, epoch), the same on both
    shards = [list(sampler) for sampler in ranks]
    assert len(shards[0]) == len(shards[1]) == len(full) // 2
    assert shards[0] == full[0::2].tolist() and shards[1] == full[1::2].tolist()  # no position served twice
    assert Counter(shards[0]) + Counter(shards[1]) == Counter(full.tolist())  # together: the whole repeated epoch
    assert set(full.tolist()) == set(range(len(factors)))
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != shards[0]  # a new draw and order each epoch


def test_the_data_module_samples_by_repeat_factor_and_says_so(gappy_coco: Path) -> None:
    images = str(gappy_coco.parent / "images")
    module = CocoDataModule(str(gappy_coco), images, str(gappy_coco), images, batch_size=1, num_workers=0,
                            sampler="repeat_factor", repeat_threshold=1.0, aspect_ratio_group_factor=-1)
    module.setup("fit")  # 2 training images: car in 1 (x1.41), cat and toothbrush in 1 (x1.41)
    np.testing.assert_allclose(module.repeat.images, [math.sqrt(2)] * 2)
    line = module.sampling_line()
    assert line.startswith("sampler repeat_factor (data.repeat_threshold=1, sqrt(t/f)): rarest class car (in 50.0% "
                           "of the images) x1.41")
    loader = module.train_dataloader()
    assert isinstance(loader.batch_sampler.sampler, RepeatFactorSampler) and len(loader) == 3
    uniform = CocoDataModule(str(gappy_coco), images, str(gappy_coco), images, batch_size=1, num_workers=0)
    uniform.setup("fit")
    assert uniform.sampling_line() is None and len(uniform.train_dataloader()) == 2  # the header says nothing


@pytest.mark.parametrize(("options", "message"), [
    ({"repeat_threshold": 0}, r"data\.repeat_threshold=0 must be in \(0, 1\]"),
    ({"repeat_threshold": 1.5}, r"data\.repeat_threshold=1\.5 must be in \(0, 1\]"),
    ({"repeat_sqrt": "yes"}, r"data\.repeat_sqrt=yes must be true or false"),
    ({"sampler": "balanced"}, r"data\.sampler='balanced' is not allowed; choose one of uniform, repeat_factor"),
])
def test_bad_sampling_options_name_the_key(gappy_coco: Path, options: dict, message: str) -> None:
    images = str(gappy_coco.parent / "images")
    with pytest.raises(DetectError, match="^" + message):
        CocoDataModule(str(gappy_coco), images, str(gappy_coco), images, **options)
