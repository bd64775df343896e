"""Checks of COCO results (detections) against the ground truth they are scored on, before any evaluator sees them:
the first bad record is named in one line instead of reaching an assertion inside pycocotools."""

from __future__ import annotations

import math
from typing import Any

from pycocotools.coco import COCO

from detect.utils.errors import DetectError

FIELDS = ("image_id", "category_id", "bbox", "score")


def _problem(record: Any, image_ids: set[int], category_ids: set[int]) -> str | None:
    """What is wrong with one result record, or None."""
    if not isinstance(record, dict) or any(key not in record for key in FIELDS):
        return f"is not a COCO result with {', '.join(FIELDS)}"
    if record["image_id"] not in image_ids:
        return f"has image_id {record['image_id']!r}, which is not an image of the ground truth"
    if record["category_id"] not in category_ids:
        return f"has category_id {record['category_id']!r}, which is not a category of the ground truth"
    box, score = record["bbox"], record["score"]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"has bbox {box!r}; it must be [x, y, width, height]"
    try:
        if not all(math.isfinite(value) for value in (*box, score)):
            return f"has a bbox {box} or score {score} that is not a finite number"
    except TypeError:
        return f"has a bbox {box!r} or score {score!r} that is not a number"
    if box[2] < 0 or box[3] < 0:
        return f"has bbox {box} with a negative width or height"
    return None


def check_results(coco_gt: COCO, results: list[dict[str, Any]]) -> None:
    """Raise a DetectError naming the first result whose image or category is not in `coco_gt`, whose box or score
    is NaN or infinite, or that is not a COCO result at all."""
    if not isinstance(results, list):
        raise DetectError(f"predictions: a list of COCO results is needed, not a {type(results).__name__}")
    image_ids, category_ids = set(coco_gt.imgs), set(coco_gt.cats)
    for index, record in enumerate(results):
        problem = _problem(record, image_ids, category_ids)
        if problem is not None:
            raise DetectError(f"predictions: record {index} {problem}; fix or drop that record (results are scored "
                              "against the annotation file's images and categories)")
