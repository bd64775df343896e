"""COCO's analyze() error curves (cocoapi's MATLAB `CocoEval.analyze`, as MMDetection's coco_error_analysis computes
them in Python): precision at the 101 recall points per class, area all, 100 detections an image, for

    C75, C50  IoU 0.75 and 0.5 (PR at strict and at PASCAL IoU)
    Loc       IoU 0.1 (localisation errors forgiven, duplicates not)
    Sim       IoU 0.1 and a detection on a box of another class of its supercategory ignored
    Oth       IoU 0.1 and a detection on a box of any other class ignored
    BG        every false positive gone: precision 1 up to the recall Oth reaches
    FN        every error gone: precision 1 at every recall

"Ignored" is pycocotools' crowd rule, as MMDetection does it: the other class's box becomes a crowd box of the
detection's class, which a detection covering it at IoU >= 0.1 (intersection over the detection's area) matches
without counting. Only the copies some detection could match are made. Without supercategories in the annotation
file no class counts as similar and Sim equals Loc.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detect.evaluation.coco import run_cocoeval
from detect.structures import Classes

CURVES = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
IGNORE_IOU = 0.1  # Loc's IoU, and the crowd IoU at which a confusion is ignored
COVER = 0.05  # crowd copies are made where a detection covers this much of itself: a superset of those matching


def _xyxy(boxes: list[list[float]]) -> np.ndarray:
    array = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.concatenate([array[:, :2], array[:, :2] + array[:, 2:]], axis=1)


def _covered_pairs(coco_gt: COCO, coco_dt: COCO, image_ids: Sequence[int]) -> set[tuple[int, int]]:
    """(annotation id, detected category id) for every ground-truth box and detection class where a detection of
    that class covers at least COVER of its own area with the box."""
    pairs = set()
    for image_id in image_ids:
        truths, found = coco_gt.imgToAnns[image_id], coco_dt.imgToAnns[image_id]
        if not truths or not found:
            continue
        d, g = _xyxy([r["bbox"] for r in found]), _xyxy([a["bbox"] for a in truths])
        width = np.minimum(d[:, None, 2], g[None, :, 2]) - np.maximum(d[:, None, 0], g[None, :, 0])
        height = np.minimum(d[:, None, 3], g[None, :, 3]) - np.maximum(d[:, None, 1], g[None, :, 1])
        area = ((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))[:, None]
        cover = np.clip(width, 0, None) * np.clip(height, 0, None) / np.maximum(area, 1e-12)
        for i, j in zip(*np.nonzero(cover >= COVER)):
            pairs.add((truths[j]["id"], found[i]["category_id"]))
    return pairs


def _with_confusions_ignored(coco_gt: COCO, pairs: set[tuple[int, int]], similar: dict[int, set[int]]) -> COCO:
    """`coco_gt` plus, for each (annotation, class) pair whose classes differ and are in `similar`, a crowd copy of
    the annotation labelled with the detection's class."""
    annotations = list(coco_gt.dataset["annotations"])
    next_id = max((ann["id"] for ann in annotations), default=0) + 1
    for ann_id, category_id in sorted(pairs):
        ann = coco_gt.anns[ann_id]
        if ann["category_id"] != category_id and ann["category_id"] in similar[category_id]:
            annotations.append({**ann, "id": next_id, "category_id": category_id, "iscrowd": 1})
            next_id += 1
    coco = COCO()
    coco.dataset = {**coco_gt.dataset, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def error_curves(coco_gt: COCO, coco_dt: COCO, image_ids: Sequence[int],
                 backend: str = "faster") -> dict[str, Any]:
    """The seven curves (len(CURVES) x 101 recall points x K classes; NaN for a class without ground truth) of the
    detections `coco_dt` (`detect.evaluation.load_results`), the recall points, the categories, and whether
    supercategories defined Sim."""
    category_ids = sorted(coco_gt.getCatIds())
    supercategory = {c: coco_gt.cats[c].get("supercategory") for c in category_ids}
    has_supercategories = all(supercategory.values())
    same_super = {k: {c for c in category_ids if has_supercategories and supercategory[c] == supercategory[k]}
                  for k in category_ids}
    every_class = {k: set(category_ids) for k in category_ids}
    strict, _ = run_cocoeval(coco_gt, coco_dt, image_ids, backend, iou_thresholds=[0.75, 0.5, IGNORE_IOU])
    precision = strict.eval["precision"][:, :, :, 0, 0]  # [IoU, recall, class] at area all, 100 detections
    pairs = _covered_pairs(coco_gt, coco_dt, image_ids)
    ignored = [run_cocoeval(_with_confusions_ignored(coco_gt, pairs, similar), coco_dt, image_ids, backend,
                            iou_thresholds=[IGNORE_IOU])[0].eval["precision"][0, :, :, 0, 0]
               for similar in (same_super, every_class)]
    curves = np.stack([*precision, *ignored, (ignored[1] > 0).astype(float), np.ones_like(ignored[1])])
    no_truth = (precision[1] < 0).all(axis=0)  # pycocotools' -1: the class has no ground truth here
    curves[:, :, no_truth] = np.nan
    return {"curves": curves, "recall": np.asarray(strict.params.recThrs), "category_ids": category_ids,
            "supercategories": has_supercategories}


def curve_summary(analysis: dict[str, Any], classes: Classes) -> dict[str, Any]:
    """The area under each curve (its AP) over all classes and per class name, for metrics.json."""
    curves = analysis["curves"]
    names = [classes.names[classes.category_ids.index(c)] for c in analysis["category_ids"]]
    with warnings.catch_warnings():  # the mean over a class without ground truth is NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        overall = np.nanmean(curves, axis=(1, 2))
        per_class = np.nanmean(curves, axis=1)
    return {"AP": {name: float(value) for name, value in zip(CURVES, overall)},
            "per_class": {n: {c: float(v) for c, v in zip(CURVES, per_class[:, k])} for k, n in enumerate(names)},
            "Sim": "same supercategory" if analysis["supercategories"] else
                   "the annotation file names no supercategories: no class counts as similar, Sim = Loc"}

