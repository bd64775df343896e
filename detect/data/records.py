"""A dataset's per-image records as a few flat numpy arrays (as Detectron2 serializes its dataset list).

A list of Python dicts or tuples per image is touched by every sample: reading an object writes its reference
count, and each DataLoader worker forked from the process then copies the memory pages it touched, so the
workers' private memory grows over an epoch towards a full copy each. Flat arrays are a handful of objects: the
workers read their buffers and share them with the parent for the whole epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.utils.errors import DetectError

_NAME_ENCODING = ("utf-8", "surrogatepass")  # json may hold lone surrogates: keep them, byte for byte


@dataclass(frozen=True)
class Records:
    """Image `i` is `image_ids[i]`, `sizes[i]` (width, height as in the json), file name
    `names[name_offsets[i]:name_offsets[i + 1]]` (UTF-8) and boxes / labels `box_offsets[i]:box_offsets[i + 1]`."""

    image_ids: np.ndarray  # int64 (N,)
    sizes: np.ndarray  # float64 (N, 2): the json's width and height, ints or floats kept exactly
    names: bytes
    name_offsets: np.ndarray  # int64 (N + 1,)
    boxes: np.ndarray  # float32 (M, 4) xyxy pixels
    labels: np.ndarray  # int64 (M,)
    box_offsets: np.ndarray  # int64 (N + 1,)

    def __len__(self) -> int:
        return len(self.image_ids)

    def file_name(self, index: int) -> str:
        start, end = self.name_offsets[index], self.name_offsets[index + 1]
        return self.names[start:end].decode(*_NAME_ENCODING)

    def target(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image `index`'s boxes (k, 4) and labels (k,), copies: nothing handed out can change the records."""
        start, end = self.box_offsets[index], self.box_offsets[index + 1]
        return self.boxes[start:end].copy(), self.labels[start:end].copy()


@dataclass
class RecordCounts:
    """Annotations the records leave out: crowd boxes, boxes with no area inside the image, images without boxes."""

    crowd: int
    degenerate: int
    empty_dropped: int


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


def build_records(images: Sequence[dict[str, Any]], annotations: Sequence[dict[str, Any]],
                  label_of: dict[Any, int], keep_empty: bool) -> tuple[Records, RecordCounts]:
    """The records of checked COCO `images` (sorted by id) and `annotations` (each image's in file order).

    Crowd boxes are left out; boxes are clipped to the image and dropped when nothing is left; images without a
    box are dropped unless `keep_empty`. `label_of` maps category ids to labels.
    """
    images = sorted(images, key=lambda image: image["id"])
    if not all(isinstance(image["id"], int) for image in images):
        raise DetectError("image ids must be integers, as in COCO; found "
                          f"{next(image['id'] for image in images if not isinstance(image['id'], int))!r}")
    ids = np.array([image["id"] for image in images], dtype=np.int64).reshape(-1)
    sizes = np.array([(image["width"], image["height"]) for image in images], dtype=np.float64).reshape(-1, 2)
    owner = np.searchsorted(ids, np.array([ann["image_id"] for ann in annotations], dtype=np.int64))
    x, y, w, h = np.array([ann["bbox"] for ann in annotations], dtype=np.float64).reshape(-1, 4).T
    crowd = np.array([bool(ann.get("iscrowd", 0)) for ann in annotations], dtype=bool)
    labels = np.array([label_of[ann["category_id"]] for ann in annotations], dtype=np.int64)
    boxes = np.stack([np.maximum(x, 0.0), np.maximum(y, 0.0),
                      np.minimum(x + w, sizes[owner, 0]), np.minimum(y + h, sizes[owner, 1])], axis=1)
    degenerate = ~crowd & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    kept = np.flatnonzero(~crowd & ~degenerate)
    kept = kept[np.argsort(owner[kept], kind="stable")]  # grouped by image, each image's boxes in file order
    counts = np.bincount(owner[kept], minlength=len(ids))
    keep = np.ones(len(ids), dtype=bool) if keep_empty else counts > 0
    names = [image["file_name"].encode(*_NAME_ENCODING) for image, kept_image in zip(images, keep) if kept_image]
    records = Records(ids[keep], sizes[keep], b"".join(names), _offsets([len(name) for name in names]),
                      boxes[kept].astype(np.float32), labels[kept], _offsets(counts[keep]))
    return records, RecordCounts(int(crowd.sum()), int(degenerate.sum()), int((~keep).sum()))
