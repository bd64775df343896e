"""Lightning data modules: COCO-format train/val splits with aspect-ratio grouped batches, and the synthetic demo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from detect.data.checks import BAD_IMAGE_POLICIES
from detect.data.coco import CocoDetection, train_transforms
from detect.data.samplers import GroupedBatchSampler, aspect_ratio_groups, collate
from detect.data.synthetic import DEMO_SHAPES, write_synthetic_coco
from detect.errors import DetectError, check_choice
from detect.model import Classes


class CocoDataModule(L.LightningDataModule):
    """Train and val COCO datasets with aspect-ratio grouped batches; sharded per rank under DDP.

    Relative paths are taken under `root` when it is given.
    """

    def __init__(self, train_json: str, train_images: str, val_json: str, val_images: str, root: str | None = None,
                 batch_size: int = 2,
                 val_batch_size: int = 1, num_workers: int = 4, pin_memory: bool = True,
                 keep_empty_train: bool = False, flip_prob: float = 0.5, photometric: bool = False,
                 aspect_ratio_group_factor: int = 3, shuffle: bool = True, seed: int = 0,
                 on_bad_image: str = "skip") -> None:
        super().__init__()
        self.paths = {key: Path(root or ".") / path for key, path in (
            ("train_json", train_json), ("train_images", train_images), ("val_json", val_json),
            ("val_images", val_images))}
        for key, path in self.paths.items():
            if not (path.is_file() if key.endswith("json") else path.is_dir()):
                what = "a COCO-format annotation json" if key.endswith("json") else "the folder of its images"
                raise DetectError(f"data.{key}: {path} does not exist; set it (or data.root) to {what}")
        if batch_size < 1 or val_batch_size < 1:
            raise DetectError(f"data.batch_size={batch_size} / data.val_batch_size={val_batch_size} must be >= 1")
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.keep_empty_train, self.flip_prob, self.photometric = keep_empty_train, flip_prob, photometric
        self.aspect_ratio_group_factor, self.shuffle, self.seed = aspect_ratio_group_factor, shuffle, seed
        check_choice("data.on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)
        self.on_bad_image = on_bad_image
        self.train_set: CocoDetection | None = None
        self.val_set: CocoDetection | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index and check both annotation files (once; the val split first, so that a bad val file fails before
        any training) and check that the two splits share one category list."""
        if self.val_set is not None:
            return
        self.val_set = CocoDetection(self.paths["val_json"], self.paths["val_images"], on_bad_image=self.on_bad_image)
        if stage in (None, "fit"):
            self.train_set = CocoDetection(self.paths["train_json"], self.paths["train_images"],
                                           train_transforms(self.flip_prob, self.photometric),
                                           keep_empty=self.keep_empty_train, on_bad_image=self.on_bad_image,
                                           keep_coco=False)  # only the val split's index is evaluated against
            if self.train_set.classes != self.val_set.classes:
                raise DetectError(f"{self.paths['train_json']} and {self.paths['val_json']} list different categories; "
                                  "both splits need the same 'categories'")

    @property
    def classes(self) -> Classes:
        """The dataset's classes (after `setup`)."""
        assert self.val_set is not None, "call setup() first"
        return self.val_set.classes

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: CocoDetection, batch_sampler: Sampler[list[int]]) -> DataLoader:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.num_workers, collate_fn=collate,
                          pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """This rank's shard in an order set by (seed, epoch), grouped by aspect ratio; a run resumed mid-epoch goes
        on with the rest of that epoch's order (no image twice, none skipped)."""
        world_size, rank = self._world()
        sampler = DistributedSampler(self.train_set, world_size, rank, shuffle=self.shuffle, seed=self.seed)
        groups = (aspect_ratio_groups(self.train_set.aspect_ratios(), self.aspect_ratio_group_factor)
                  if self.aspect_ratio_group_factor >= 0 else [0] * len(self.train_set))
        batch_sampler = GroupedBatchSampler(sampler, groups, self.batch_size)
        if self.trainer is not None:  # Lightning restores the loop's progress from a checkpoint before this call
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches trained in this epoch
            batch_sampler.start_batch = done if done < len(batch_sampler) else 0
        return self._loader(self.train_set, batch_sampler)

    def val_dataloader(self) -> DataLoader:
        """Every val image once per rank shard; DistributedSampler pads with repeats, the evaluator drops them."""
        world_size, rank = self._world()
        sampler = (DistributedSampler(self.val_set, world_size, rank, shuffle=False) if world_size > 1
                   else range(len(self.val_set)))
        return self._loader(self.val_set, BatchSampler(sampler, self.val_batch_size, drop_last=False))


class SyntheticDataModule(CocoDataModule):
    """The built-in default: writes (once) the synthetic COCO dataset of `detect.data.synthetic` and reads it back."""

    def __init__(self, cache_dir: str | None = None, num_train: int = 2000, num_val: int = 200,
                 image_size: Sequence[int] = (112, 160), max_objects: int = 4,
                 object_sizes: Sequence[int] = (16, 56), shapes: Sequence[str] = DEMO_SHAPES,
                 **loader_options: Any) -> None:
        paths = write_synthetic_coco(cache_dir, seed=loader_options.get("seed", 0), num_train=num_train,
                                     num_val=num_val, image_size=tuple(image_size), max_objects=max_objects,
                                     object_sizes=tuple(object_sizes), shapes=tuple(shapes))
        super().__init__(**{key: str(path) for key, path in paths.items()}, **loader_options)
