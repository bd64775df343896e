"""COCO-format detection data: any annotation json + image folder, read with pycocotools and OpenCV."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors

from detect.data.checks import CheckReport, check_coco
from detect.data.records import build_records
from detect.structures import Classes
from detect.utils.errors import DetectError, first_line


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HxWx3: grayscale is expanded, an alpha channel dropped."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # always 3-channel BGR, EXIF orientation applied
    if image is None:
        raise DetectError(f"image {path} could not be read; check that it exists and is a JPEG/PNG/BMP/TIFF file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_checked(annotation_file: str | Path, image_dir: str | Path | None = None,
                 on_bad_image: str = "skip") -> tuple[dict[str, Any], CheckReport]:
    """The json of `annotation_file` after `detect.data.checks.check_coco` (its images too, when `image_dir` is
    given), and the checks' report; one readable error for a missing or broken file."""
    path = Path(annotation_file)
    if not path.is_file():
        raise DetectError(f"annotation file {path} does not exist; pass the path of a COCO-format json")
    try:
        dataset = json.loads(path.read_text())
        if not all(isinstance(dataset.get(key), list) for key in ("images", "annotations", "categories")):
            raise KeyError("images, annotations or categories")
        return check_coco(dataset, path, image_dir, on_bad_image)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DetectError(f"annotation file {path} is not COCO-format json ({first_line(error)}); "
                          "it needs 'images', 'annotations' and 'categories' lists") from None


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


SplitReader = Callable[[], tuple[dict[str, Any], CheckReport]]  # one split as a checked COCO-format dict + report


class CocoDetection(Dataset):
    """Images with boxes in xyxy pixels and contiguous labels 1..K (0 is background).

    Category ids of any values map to labels in sorted id order and back through `classes`. Crowd boxes are left
    out of the targets (pycocotools still sees them when evaluating); degenerate boxes are dropped and counted.
    `source` is a COCO annotation file, read and checked first (`detect.data.checks`), or a `SplitReader` (a YOLO
    or Pascal VOC split converted to the same checked dict); `report` says what was fixed or skipped.
    The images' records are flat arrays (`detect.data.records`) that forked DataLoader workers share; pycocotools'
    index of the split (`coco`, the evaluator's ground truth) is kept with `keep_coco`, else read again if asked.
    """

    def __init__(self, source: str | Path | SplitReader, image_dir: str | Path,
                 transforms: Callable[..., tuple[torch.Tensor, dict[str, Any]]] | None = None,
                 keep_empty: bool = True, on_bad_image: str = "skip", keep_coco: bool = True) -> None:
        self.read: SplitReader = source if callable(source) else partial(read_checked, source, image_dir, on_bad_image)
        dataset, self.report = self.read()
        self.image_dir, self.transforms = Path(image_dir), transforms
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
        """pycocotools' index of the checked split; read and checked again on first use when not kept."""
        return index_coco(self.read()[0])

    @property
    def num_boxes(self) -> int:
        """Boxes in the records (crowd and degenerate boxes left out)."""
        return len(self.records.labels)

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
