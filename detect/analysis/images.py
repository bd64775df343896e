"""Validation images: ground truth beside predictions, and the images the model does worst on by per-image AP50
(MMDetection's analyze_results), from COCOeval's per-image matches."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools.cocoeval import COCOeval

from detect.model import Classes
from detect.plotting import plt, save_figure
from detect.visualize import draw_detections


def per_image_ap50(coco_eval: COCOeval) -> dict[int, float]:
    """AP at IoU 0.5 of each image with ground truth, its classes pooled, 101-point interpolated as COCO's (an
    image without ground truth has no AP: its detections are false positives in the confusion matrix)."""
    pooled: dict[int, dict[str, list]] = defaultdict(lambda: {"scores": [], "tp": [], "gt": 0})
    for entry in coco_eval.evalImgs:
        if entry is None or entry["aRng"] != coco_eval.params.areaRng[0]:
            continue
        keep = ~entry["dtIgnore"][0].astype(bool)
        image = pooled[entry["image_id"]]
        image["scores"] += np.asarray(entry["dtScores"])[keep].tolist()
        image["tp"] += (entry["dtMatches"][0][keep] > 0).tolist()
        image["gt"] += int((np.asarray(entry["gtIgnore"]) == 0).sum())
    ap = {}
    for image_id, image in pooled.items():
        if image["gt"] == 0:
            continue
        order = np.argsort(-np.asarray(image["scores"]), kind="mergesort")
        tp = np.cumsum(np.asarray(image["tp"], dtype=float)[order])
        precision = tp / np.arange(1, len(tp) + 1) if len(tp) else np.zeros(0)
        recall = tp / image["gt"]
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(tp) else precision
        points = np.searchsorted(recall, coco_eval.params.recThrs, side="left")
        ap[image_id] = float(np.mean([envelope[p] if p < len(envelope) else 0.0 for p in points]))
    return ap


def _drawn(image: np.ndarray, records: list[dict[str, Any]], classes: Classes) -> np.ndarray:
    canvas = image.copy()
    labels = [classes.category_ids.index(r["category_id"]) + 1 for r in records]
    boxes = np.array([r["bbox"] for r in records], dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    draw_detections(canvas, boxes, labels, [r.get("score", 1.0) for r in records], classes.names)
    return canvas


def plot_image_pairs(coco_eval: COCOeval, results: list[dict[str, Any]], classes: Classes, image_dir: Path,
                     image_ids: list[int], score_threshold: float, title: str, path: Path,
                     ap: dict[int, float] | None = None) -> Path | None:
    """For each image: ground truth (left) and the predictions at or above `score_threshold` (right)."""
    coco_gt = coco_eval.cocoGt
    by_image = defaultdict(list)
    for result in results:
        if result["score"] >= score_threshold:
            by_image[result["image_id"]].append(result)
    pairs = []
    for image_id in image_ids:
        pixels = cv2.imread(str(image_dir / coco_gt.imgs[image_id]["file_name"]), cv2.IMREAD_COLOR)
        if pixels is None:
            continue
        truths = [a | {"score": 1.0} for a in coco_gt.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        pairs.append((image_id, _drawn(pixels, truths, classes), _drawn(pixels, by_image[image_id], classes)))
    if not pairs:
        return None
    columns = 2 if len(pairs) > 4 else 1
    lines = math.ceil(len(pairs) / columns)
    figure, axes = plt.subplots(lines, 2 * columns, figsize=(6 * columns, 2.6 * lines), squeeze=False,
                                layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for n, (image_id, truth, predicted) in enumerate(pairs):
        row, column = divmod(n, columns)
        score = f", AP50 {ap[image_id]:.2f}" if ap and image_id in ap else ""
        for offset, picture, what in ((0, truth, "ground truth"), (1, predicted, "predicted")):
            ax = axes[row, 2 * column + offset]
            ax.imshow(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB))
            ax.set_title(f"{image_id}: {what}{score}", fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)
