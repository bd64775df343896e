"""COCO-format detection data: any annotation json + image folder, read with pycocotools and OpenCV."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2

from detect.data_checks import BAD_IMAGE_POLICIES, CheckReport, check_coco
from detect.errors import DetectError, check_choice
from detect.model import Classes
from detect.records import build_records
from detect.samplers import GroupedBatchSampler, aspect_ratio_groups, collate
from detect.synthetic import write_synthetic_coco


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HxWx3: grayscale is expanded, an alpha channel dropped."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # always 3-channel BGR, EXIF orientation applied
    if image is None:
        raise DetectError(f"image {path} could not be read; check that it exists and is a JPEG/PNG/BMP/TIFF file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_checked(annotation_file: str | Path, image_dir: str | Path | None = None,
                 on_bad_image: str = "skip") -> tuple[dict[str, Any], CheckReport]:
    """The json of `annotation_file` after `detect.data_checks.check_coco` (its images too, when `image_dir` is
    given), and the checks' report; one readable error for a missing or broken file."""
    path = Path(annotation_file)
    if not path.is_file():
        raise DetectError(f"annotation file {path} does not exist; pass the path of a COCO-format json")
    try:
        dataset = json.loads(path.read_text())
        if not all(isinstance(dataset.get(key), list) for key in ("images", "annotations", "categories")):
            raise KeyError("images, annotations or categories")
        dataset, report = check_coco(dataset, path, image_dir, on_bad_image)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DetectError(f"annotation file {path} is not COCO-format json ({type(error).__name__}: {error}); "
                          "it needs 'images', 'annotations' and 'categories' lists") from None
    if image_dir is not None and dataset["images"] == [] and report.counts["bad_image"]:
        raise DetectError(f"none of the {report.counts['bad_image']} images of {path} is usable "
                          f"({report.examples['bad_image']}); check the image folder {image_dir}")
    return dataset, report


def index_coco(dataset: dict[str, Any]) -> COCO:
    """pycocotools' COCO index of a COCO-format dict, quietly."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def read_coco(annotation_file: str | Path, image_dir: str | Path | None = None,
              on_bad_image: str = "skip") -> tuple[COCO, CheckReport]:
    """pycocotools' COCO index of `annotation_file` after the checks of `read_checked`, and their report."""
    dataset, report = read_checked(annotation_file, image_dir, on_bad_image)
    return index_coco(dataset), report


def load_coco(annotation_file: str | Path) -> COCO:
    """pycocotools' COCO index of `annotation_file`, its annotations checked (see `read_coco`)."""
    return read_coco(annotation_file)[0]


def train_transforms(flip_prob: float, photometric: bool) -> v2.Compose:
    """Flip and optional colour jitter; multi-scale resizing is the model's (a list of `model.min_size`)."""
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(flip_prob)]
    if photometric:
        steps.append(v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02))
    steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    return v2.Compose(steps)


class CocoDetection(Dataset):
    """Images with boxes in xyxy pixels and contiguous labels 1..K (0 is background).

    Category ids of any values map to labels in sorted id order and back through `classes`. Crowd boxes are left
    out of the targets (pycocotools still sees them when evaluating); degenerate boxes are dropped and counted.
    The file and its images are checked first (`detect.data_checks`); `report` says what was fixed or skipped.
    The images' records are flat arrays (`detect.records`) that forked DataLoader workers share; pycocotools'
    index of the file (`coco`, the evaluator's ground truth) is kept with `keep_coco`, else read again if asked.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, transforms: v2.Transform | None = None,
                 keep_empty: bool = True, on_bad_image: str = "skip", keep_coco: bool = True) -> None:
        dataset, self.report = read_checked(annotation_file, image_dir, on_bad_image)
        self.annotation_file, self.image_dir, self.on_bad_image = Path(annotation_file), Path(image_dir), on_bad_image
        self.transforms = transforms
        names = {category["id"]: category["name"] for category in dataset["categories"]}
        category_ids = sorted(names)
        self.classes = Classes([names[c] for c in category_ids], category_ids)
        label_of = {category_id: label for label, category_id in enumerate(category_ids, start=1)}
        self.records, counts = build_records(dataset["images"], dataset["annotations"], label_of, keep_empty)
        self.num_crowd, self.num_degenerate, self.num_empty_dropped = (counts.crowd, counts.degenerate,
                                                                       counts.empty_dropped)
        if keep_coco:
            self.coco = index_coco(dataset)

    @cached_property
    def coco(self) -> COCO:
        """pycocotools' index of the checked file; read and checked again on first use when not kept."""
        return read_coco(self.annotation_file, self.image_dir, self.on_bad_image)[0]

    @property
    def image_ids(self) -> list[int]:
        return self.records.image_ids.tolist()

    @property
    def targets(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every image's (boxes, labels), as copies."""
        return [self.records.target(index) for index in range(len(self))]

    def __len__(self) -> int:
        return len(self.records)

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the annotation file (no decoding)."""
        return (self.records.sizes[:, 0] / self.records.sizes[:, 1]).tolist()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """A uint8 3xHxW RGB image and its target: boxes (float xyxy), labels, image_id."""
        array = read_image(self.image_dir / self.records.file_name(index))
        image = tv_tensors.Image(torch.from_numpy(array).permute(2, 0, 1))
        boxes, labels = self.records.target(index)
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=array.shape[:2]),
            "labels": torch.from_numpy(labels),
            "image_id": int(self.records.image_ids[index]),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        target["boxes"] = target["boxes"].as_subclass(torch.Tensor)
        return image.as_subclass(torch.Tensor), target


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
    """The built-in default: writes (once) the synthetic COCO dataset of `detect.synthetic` and reads it back."""

    def __init__(self, cache_dir: str | None = None, num_train: int = 2000, num_val: int = 200,
                 image_size: Sequence[int] = (112, 160), max_objects: int = 4,
                 object_sizes: Sequence[int] = (16, 56), **loader_options: Any) -> None:
        paths = write_synthetic_coco(cache_dir, seed=loader_options.get("seed", 0), num_train=num_train,
                                     num_val=num_val, image_size=tuple(image_size), max_objects=max_objects,
                                     object_sizes=tuple(object_sizes))
        super().__init__(**{key: str(path) for key, path in paths.items()}, **loader_options)
