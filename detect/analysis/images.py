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

from detect.structures import Classes
from detect.utils.drawing import draw_detections
from detect.utils.plotting import plt, save_figure


def _pycocotools_matches(coco_eval: COCOeval) -> dict[int, dict[str, list]]:
    """Per image: the ids and scores of its detections and whether each is a hit at IoU 0.5 (crowd matches left
    out), from pycocotools' per-image evaluations (area all)."""
    pooled: dict[int, dict[str, list]] = defaultdict(lambda: {"ids": [], "scores": [], "tp": []})
    for entry in coco_eval.evalImgs:
        if entry is None or entry["aRng"] != coco_eval.params.areaRng[0]:
            continue
        keep = ~entry["dtIgnore"][0].astype(bool)
        pooled[entry["image_id"]]["ids"] += np.asarray(entry["dtIds"])[keep].tolist()
        pooled[entry["image_id"]]["scores"] += np.asarray(entry["dtScores"])[keep].tolist()
        pooled[entry["image_id"]]["tp"] += (entry["dtMatches"][0][keep] > 0).tolist()
    return pooled


def _faster_matches(coco_eval: Any) -> dict[int, dict[str, list]]:
    """The same from faster-coco-eval's matches at its first IoU threshold ("<detection id>_<ground truth id>"),
    each image and class keeping its 100 best detections as COCOeval does. Those matches pool the area ranges: a
    box can be matched again by a lower detection where its first one was out of range, so each box keeps only its
    best-scored detection (the first in pycocotools' order), as in area "all"."""
    crowd = {ann_id for ann_id, ann in coco_eval.cocoGt.anns.items() if ann.get("iscrowd", 0)}
    on_crowd, first = set(), {}  # detections matched to a crowd box; box -> (score, -id) of its first detection
    for dt_id, gt_id in (map(int, key.split("_")) for key in coco_eval.eval["matched"]):
        rank = (coco_eval.cocoDt.anns[dt_id]["score"], -dt_id)
        if gt_id in crowd:
            on_crowd.add(dt_id)
        elif rank > first.get(gt_id, (-np.inf, 0)):
            first[gt_id] = rank
    hits = {-negative_id for _, negative_id in first.values()}
    by_pair: dict[tuple[int, int], list] = defaultdict(list)
    for dt_id, dt in coco_eval.cocoDt.anns.items():
        by_pair[dt["image_id"], dt["category_id"]].append((dt["score"], dt_id))
    evaluated, categories = set(coco_eval.params.imgIds), set(coco_eval.params.catIds)
    pooled: dict[int, dict[str, list]] = defaultdict(lambda: {"ids": [], "scores": [], "tp": []})
    for (image_id, category_id), found in by_pair.items():
        if image_id not in evaluated or category_id not in categories:
            continue
        for score, dt_id in sorted(found, key=lambda item: -item[0])[:coco_eval.params.maxDets[-1]]:
            if dt_id in hits or dt_id not in on_crowd:
                pooled[image_id]["ids"].append(dt_id)
                pooled[image_id]["scores"].append(score)
                pooled[image_id]["tp"].append(dt_id in hits)
    return pooled


def per_image_ap50(coco_eval: Any) -> dict[int, float]:
    """AP at IoU 0.5 of each image with ground truth, its classes pooled, 101-point interpolated as COCO's (an
    image without ground truth has no AP: its detections are false positives in the confusion matrix)."""
    pooled = _pycocotools_matches(coco_eval) if isinstance(coco_eval, COCOeval) else _faster_matches(coco_eval)
    categories = set(coco_eval.params.catIds)
    ap = {}
    for image_id in coco_eval.params.imgIds:
        truths = sum(1 for a in coco_eval.cocoGt.imgToAnns[image_id]
                     if not a.get("iscrowd", 0) and a["category_id"] in categories)
        if truths == 0:
            continue
        image = pooled.get(image_id, {"ids": [], "scores": [], "tp": []})
        order = np.lexsort((image["ids"], -np.asarray(image["scores"], dtype=float)))  # ties: the first detection
        tp = np.cumsum(np.asarray(image["tp"], dtype=float)[order])
        precision = tp / np.arange(1, len(tp) + 1) if len(tp) else np.zeros(0)
        recall = tp / truths
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(tp) else precision
        points = np.searchsorted(recall, coco_eval.params.recThrs, side="left")
        ap[image_id] = float(np.mean([envelope[p] if p < len(envelope) else 0.0 for p in points]))
    return ap


def _drawn(image: np.ndarray, records: list[dict[str, Any]], classes: Classes) -> np.ndarray:
    canvas = image.copy()
    labels = [classes.category_ids.index(r["category_id"]) + 1 for r in records]
    boxes = np.array([r["bbox"] for r in records], dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    scores = [r["score"] for r in records] if records and "score" in records[0] else None  # none: ground truth
    draw_detections(canvas, boxes, labels, scores, classes.names)
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
        truths = [a for a in coco_gt.imgToAnns[image_id] if not a.get("iscrowd", 0)]
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
