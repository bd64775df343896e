"""A detection confusion matrix: ground-truth class (rows) against predicted class (columns), with a background row
for false detections and a background column for missed objects, at a score threshold and IoU 0.5."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torchvision.ops import box_iou

from detect.structures import Classes
from detect.utils.plotting import plt, save_figure


def _xyxy(boxes: list[list[float]]) -> torch.Tensor:
    tensor = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    return torch.cat([tensor[:, :2], tensor[:, :2] + tensor[:, 2:]], dim=1)


def confusion_matrix(coco_gt: COCO, results: list[dict[str, Any]], classes: Classes, score_threshold: float,
                     iou_threshold: float = 0.5, image_ids: list[int] | None = None) -> np.ndarray:
    """(K+1) x (K+1) counts; index K is the background. Per image, ground-truth boxes (crowd left out) and the
    detections at or above `score_threshold` are matched one to one, whatever their classes, highest IoU first."""
    index = {category_id: k for k, category_id in enumerate(classes.category_ids)}
    background = len(classes)
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    detections: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        if result["score"] >= score_threshold:
            detections[result["image_id"]].append(result)
    for image_id in image_ids if image_ids is not None else coco_gt.getImgIds():
        truths = [a for a in coco_gt.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        found = detections.get(image_id, [])
        iou = box_iou(_xyxy([a["bbox"] for a in truths]), _xyxy([d["bbox"] for d in found])).numpy()
        matched_truth, matched_found = set(), set()
        for t, d in sorted(zip(*np.nonzero(iou >= iou_threshold)), key=lambda pair: -iou[pair]):
            if t not in matched_truth and d not in matched_found:
                matched_truth.add(t)
                matched_found.add(d)
                matrix[index[truths[t]["category_id"]], index[found[d]["category_id"]]] += 1
        for t, truth in enumerate(truths):
            if t not in matched_truth:
                matrix[index[truth["category_id"]], background] += 1
        for d, detection in enumerate(found):
            if d not in matched_found:
                matrix[background, index[detection["category_id"]]] += 1
    return matrix


def write_confusion(matrix: np.ndarray, names: list[str], score_threshold: float, folder: Path) -> list[Path]:
    """confusion_matrix.csv (counts) and confusion_matrix.png (counts and row-normalized side by side)."""
    labels = [*names, "background"]
    csv_path = folder / "confusion_matrix.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["true \\ predicted", *labels])
        writer.writerows([label, *row] for label, row in zip(labels, matrix.tolist()))
    with np.errstate(invalid="ignore"):
        normalized = matrix / matrix.sum(axis=1, keepdims=True)
    size = 2.5 + 0.6 * len(labels)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size), layout="constrained")
    for ax, values, title, fmt in ((axes[0], matrix, "counts", "d"), (axes[1], normalized, "row-normalized", ".2f")):
        ax.imshow(np.nan_to_num(values.astype(float)), cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="predicted", ylabel="true", title=f"{title} (score >= {score_threshold:.2f}, IoU 0.5)")
        if len(labels) <= 30:
            for (i, j), value in np.ndenumerate(values):
                if not np.isnan(value) and value:
                    ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=8,
                            color="white" if np.nan_to_num(values[i, j] / np.nanmax(values)) > 0.5 else "black")
    return [csv_path, save_figure(figure, folder / "confusion_matrix.png")]
