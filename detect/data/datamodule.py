"""Lightning data modules: train/val splits in COCO, YOLO or Pascal VOC form with aspect-ratio grouped batches, and
the synthetic demo."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from detect.data.checks import BAD_IMAGE_POLICIES
from detect.data.augment import check_augment, train_transforms
from detect.data.coco import CocoDetection, SplitReader, read_checked
from detect.data.copy_paste import copy_paste_collate
from detect.data.samplers import (GroupedBatchSampler, RepeatFactors, RepeatFactorSampler, aspect_ratio_groups,
                                  check_sampling, collate, repeat_factors)
from detect.data.synthetic import DEMO_SHAPES, write_synthetic_coco
from detect.data.voc import read_voc_split, split_ids, voc_class_names
from detect.data.yolo import read_data_yaml, read_yolo_split, split_sources
from detect.structures import Classes
from detect.utils.errors import DetectError, check_choice


class DetectionDataModule(L.LightningDataModule):
    """Train and val splits with aspect-ratio grouped batches, sharded per rank under DDP. A subclass reads the
    splits of its label format (`reader`) into checked COCO-format dicts: every format shares the checks and the
    records of `CocoDetection`."""

    def __init__(self, batch_size: int = 2, val_batch_size: int = 1, num_workers: int = 4, pin_memory: bool = True,
                 keep_empty_train: bool = False, flip_prob: float = 0.5, photometric: bool = False,
                 aspect_ratio_group_factor: int = 3, shuffle: bool = True, seed: int = 0,
                 on_bad_image: str = "skip", sampler: str = "uniform", repeat_threshold: float = 0.1,
                 repeat_sqrt: bool = True, augment: str = "hflip", crop_size: int | None = None,
                 copy_paste: bool = False) -> None:
        super().__init__()
        if batch_size < 1 or val_batch_size < 1:
            raise DetectError(f"data.batch_size={batch_size} / data.val_batch_size={val_batch_size} must be >= 1")
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.keep_empty_train, self.flip_prob, self.photometric = keep_empty_train, flip_prob, photometric
        self.aspect_ratio_group_factor, self.shuffle, self.seed = aspect_ratio_group_factor, shuffle, seed
        check_choice("data.on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)
        self.on_bad_image = on_bad_image
        check_sampling(sampler, repeat_threshold, repeat_sqrt)
        check_augment(augment, crop_size, copy_paste)  # the crop size against the model's: check_train_config
        self.augment, self.crop_size, self.copy_paste = augment, crop_size, copy_paste
        self.sampler, self.repeat_threshold, self.repeat_sqrt = sampler, repeat_threshold, repeat_sqrt
        self.repeat: RepeatFactors | None = None
        self.train_set: CocoDetection | None = None
        self.val_set: CocoDetection | None = None

    def reader(self, split: str) -> SplitReader:
        """Reads `split` ("train" or "val") as a checked COCO-format dict and its report."""
        raise NotImplementedError

    def image_dir(self, split: str) -> Path:
        """The folder that the file names of `split` are relative to."""
        raise NotImplementedError

    def source(self, split: str) -> str:
        """What `split` is read from, for the header and messages."""
        raise NotImplementedError

    def val_files(self) -> dict[str, str]:
        """The val split's files for the run's metrics.json (plots and `python -m detect analyze` read them)."""
        return {"val_images": str(self.image_dir("val").resolve())}

    def setup(self, stage: str | None = None) -> None:
        """Read and check both splits (once; the val split first, so that a bad val split fails before any
        training) and check that the two splits share one category list."""
        if self.val_set is not None:
            return
        self.val_set = CocoDetection(self.reader("val"), self.image_dir("val"))
        if stage in (None, "fit"):
            self.train_set = CocoDetection(self.reader("train"), self.image_dir("train"),
                                           train_transforms(self.flip_prob, self.photometric, self.augment,
                                                            self.crop_size),
                                           keep_empty=self.keep_empty_train,
                                           keep_coco=False)  # only the val split's index is evaluated against
            if self.train_set.classes != self.val_set.classes:
                raise DetectError(f"{self.source('train')} and {self.source('val')} list different categories; "
                                  "both splits need the same 'categories'")
            if self.sampler == "repeat_factor":
                labels = [self.train_set.records.target(index)[1] for index in range(len(self.train_set))]
                self.repeat = repeat_factors(labels, self.repeat_threshold, self.repeat_sqrt)

    def recipe_lines(self) -> list[str]:
        """The header's account of the training augmentation and sampling other than flips and uniform."""
        lines = [line for line in [self.sampling_line()] if line]
        if self.augment != "hflip" or self.copy_paste:
            lines.append(f"augment {self.augment} (data.augment)"
                         + (f", {self.crop_size} px crops" if self.augment == "lsj" else "")
                         + (", copy-paste within each batch" if self.copy_paste else ""))
        return lines

    def sampling_line(self) -> str | None:
        """The header's account of repeat-factor sampling (after `setup`); None for the uniform sampler."""
        if self.repeat is None:
            return None
        fraction, factor = self.repeat.class_fraction, self.repeat.class_factor
        rarest, commonest = min(fraction, key=fraction.get), max(fraction, key=fraction.get)
        names = self.classes.names
        return (f"sampler repeat_factor (data.repeat_threshold={self.repeat_threshold:g}, "
                f"{'sqrt(t/f)' if self.repeat_sqrt else 't/f'}): rarest class {names[rarest - 1]} (in "
                f"{fraction[rarest]:.1%} of the images) x{factor[rarest]:.2f}, commonest {names[commonest - 1]} "
                f"({fraction[commonest]:.1%}) x{factor[commonest]:.2f}; {self.repeat.images.sum():.0f} images an "
                f"epoch instead of {len(self.train_set)}")

    @property
    def classes(self) -> Classes:
        """The dataset's classes (after `setup`)."""
        assert self.val_set is not None, "call setup() first"
        return self.val_set.classes

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: CocoDetection, batch_sampler: Sampler[list[int]],
                collate_fn: Callable[[list], tuple[list, list]] = collate) -> DataLoader:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.num_workers, collate_fn=collate_fn,
                          pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """This rank's shard in an order set by (seed, epoch), grouped by aspect ratio; a run resumed mid-epoch goes
        on with the rest of that epoch's order (no image twice, none skipped)."""
        world_size, rank = self._world()
        sampler = (DistributedSampler(self.train_set, world_size, rank, shuffle=self.shuffle, seed=self.seed)
                   if self.repeat is None else
                   RepeatFactorSampler(self.repeat.images, world_size, rank, shuffle=self.shuffle, seed=self.seed))
        groups = (aspect_ratio_groups(self.train_set.aspect_ratios(), self.aspect_ratio_group_factor)
                  if self.aspect_ratio_group_factor >= 0 else [0] * len(self.train_set))
        batch_sampler = GroupedBatchSampler(sampler, groups, self.batch_size)
        if self.trainer is not None:  # Lightning restores the loop's progress from a checkpoint before this call
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches trained in this epoch
            batch_sampler.start_batch = done if done < len(batch_sampler) else 0
        return self._loader(self.train_set, batch_sampler, copy_paste_collate if self.copy_paste else collate)

    def val_dataloader(self) -> DataLoader:
        """Every val image once per rank shard; DistributedSampler pads with repeats, the evaluator drops them."""
        world_size, rank = self._world()
        sampler = (DistributedSampler(self.val_set, world_size, rank, shuffle=False) if world_size > 1
                   else range(len(self.val_set)))
        return self._loader(self.val_set, BatchSampler(sampler, self.val_batch_size, drop_last=False))


class CocoDataModule(DetectionDataModule):
    """COCO-format splits: an annotation json and an image folder each. Relative paths are taken under `root` when
    it is given."""

    def __init__(self, train_json: str, train_images: str, val_json: str, val_images: str, root: str | None = None,
                 **loader_options: Any) -> None:
        self.paths = {key: Path(root or ".") / path for key, path in (
            ("train_json", train_json), ("train_images", train_images), ("val_json", val_json),
            ("val_images", val_images))}
        for key, path in self.paths.items():
            if not (path.is_file() if key.endswith("json") else path.is_dir()):
                what = "a COCO-format annotation json" if key.endswith("json") else "the folder of its images"
                raise DetectError(f"data.{key}: {path} does not exist; set it (or data.root) to {what}")
        super().__init__(**loader_options)

    def reader(self, split: str) -> SplitReader:
        return partial(read_checked, self.paths[f"{split}_json"], self.paths[f"{split}_images"], self.on_bad_image)

    def image_dir(self, split: str) -> Path:
        return self.paths[f"{split}_images"]

    def source(self, split: str) -> str:
        return str(self.paths[f"{split}_json"])

    def val_files(self) -> dict[str, str]:
        return super().val_files() | {"val_json": str(self.paths["val_json"].resolve())}


class YoloDataModule(DetectionDataModule):
    """An Ultralytics YOLO dataset: `root`/`data_yaml` names the classes and the image folders (or .txt lists) of
    its splits under the keys `train_split` and `val_split`; labels/ lies beside images/ (`detect.data.yolo`)."""

    def __init__(self, root: str, data_yaml: str = "data.yaml", train_split: str = "train", val_split: str = "val",
                 **loader_options: Any) -> None:
        self.data_yaml = Path(root) / data_yaml
        data, _ = read_data_yaml(self.data_yaml)
        self.splits = {"train": train_split, "val": val_split}
        self.base = {split: split_sources(data, self.data_yaml, key)[0] for split, key in self.splits.items()}
        super().__init__(**loader_options)

    def reader(self, split: str) -> SplitReader:
        return partial(read_yolo_split, self.data_yaml, self.splits[split], self.on_bad_image)

    def image_dir(self, split: str) -> Path:
        return self.base[split]

    def source(self, split: str) -> str:
        return f"{self.data_yaml} ({self.splits[split]})"


class VocDataModule(DetectionDataModule):
    """A Pascal VOC folder (`root`: Annotations/, JPEGImages/, ImageSets/Main/<split>.txt; `detect.data.voc`). The
    classes are `classes` in that order, or every object name of both splits, sorted."""

    def __init__(self, root: str, train_split: str = "train", val_split: str = "val",
                 classes: Sequence[str] | None = None, **loader_options: Any) -> None:
        self.root = Path(root)
        self.splits = {"train": train_split, "val": val_split}
        for split in self.splits.values():
            split_ids(self.root, split)  # one line now if the folder or a split file is missing
        self.given_classes = list(classes) if classes else None
        super().__init__(**loader_options)

    @cached_property
    def class_names(self) -> list[str]:
        names = self.given_classes or voc_class_names(self.root, list(self.splits.values()))
        if not names:
            raise DetectError(f"the annotation files of {self.root} name no object; label some, or list data.classes")
        return names

    def reader(self, split: str) -> SplitReader:
        return partial(read_voc_split, self.root, self.splits[split], self.class_names, self.on_bad_image)

    def image_dir(self, split: str) -> Path:
        return self.root / "JPEGImages"

    def source(self, split: str) -> str:
        return str(self.root / "ImageSets" / "Main" / f"{self.splits[split]}.txt")


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
