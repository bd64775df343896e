"""What the label-format readers (YOLO, Pascal VOC) share: a split's images and boxes as a COCO-format dict, the
form that `detect.data.checks.check_coco` checks and `detect.data.records` turns into training records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Label = tuple[int, list[float], bool]  # class index (0-based), xywh box in pixels, crowd (VOC `difficult`)


def image_entry(image_id: int, file_name: str, size: tuple[int, int] | str) -> dict[str, Any]:
    """A COCO image entry; without width and height when the file's header gave a problem instead of a size (the
    image check then names it)."""
    entry: dict[str, Any] = {"id": image_id, "file_name": file_name}
    if not isinstance(size, str):
        entry["width"], entry["height"] = size
    return entry


def coco_dataset(names: Sequence[str], images: list[dict[str, Any]],
                 labels: Sequence[Sequence[Label]]) -> dict[str, Any]:
    """COCO-format dict of `images` and each one's labels; class index i is category id i + 1."""
    annotations = []
    for image, image_labels in zip(images, labels):
        for index, box, crowd in image_labels:
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": index + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": int(crowd)})
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}
