"""Precision-recall and F1-vs-score curves from COCOeval's own accumulated arrays (no second evaluator).

`coco_eval.eval["precision"]` and `["scores"]` are [IoU threshold, recall threshold, class, area, max detections]:
the interpolated precision at each of the 101 recall points, and the score at which that recall is reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from detect.utils.plotting import plt, save_figure

SCORE_GRID = np.linspace(0.0, 1.0, 101)


def pr_curves(coco_eval: COCOeval, iou: float | None = 0.5) -> np.ndarray:
    """Precision at the 101 recall points per class (K x 101): at IoU `iou`, or the mean over 0.5:0.95 for None;
    NaN for a class without ground truth."""
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # area all, maxDets 100
    if iou is not None:
        precision = precision[np.isclose(coco_eval.params.iouThrs, iou)]
    precision = np.where(precision < 0, np.nan, precision)
    with np.errstate(invalid="ignore"):
        return np.nanmean(precision, axis=0).T if iou is None else precision[0].T


def f1_curve(coco_eval: COCOeval, iou: float = 0.5) -> np.ndarray:
    """F1 per class (K x len(SCORE_GRID)) at each score threshold of SCORE_GRID and IoU `iou`: keeping the
    detections scored at or above a threshold reaches the highest recall point whose score is at least it."""
    t = int(np.flatnonzero(np.isclose(coco_eval.params.iouThrs, iou))[0])
    precision = coco_eval.eval["precision"][t, :, :, 0, -1]  # R x K
    scores = coco_eval.eval["scores"][t, :, :, 0, -1]
    recall = coco_eval.params.recThrs
    f1 = np.full((precision.shape[1], len(SCORE_GRID)), np.nan)
    for k in range(precision.shape[1]):
        if (precision[:, k] < 0).all():
            continue  # no ground truth for this class
        reached = (precision[:, k] > 0) & (scores[:, k] > 0)
        for c, threshold in enumerate(SCORE_GRID):
            points = np.flatnonzero(reached & (scores[:, k] >= threshold))
            if points.size == 0:
                f1[k, c] = 0.0
                continue
            r = points[-1]  # the highest recall reached with this threshold
            f1[k, c] = 2 * precision[r, k] * recall[r] / (precision[r, k] + recall[r])
    return f1


def best_threshold(f1: np.ndarray) -> tuple[float, float]:
    """(score threshold, mean F1) with the highest F1 averaged over the classes; the highest such threshold."""
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(f1, axis=0) if not np.isnan(f1).all() else np.zeros(f1.shape[1])
    best = len(mean) - 1 - int(np.argmax(mean[::-1]))
    return float(SCORE_GRID[best]), float(mean[best])


def plot_pr(coco_eval: COCOeval, names: list[str], path: Path) -> Path:
    """Per-class precision-recall curves at IoU 0.5 and at 0.5:0.95 (with each class's AP in the legend)."""
    recall = coco_eval.params.recThrs
    figure, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for ax, iou, title in ((axes[0], 0.5, "IoU 0.5"), (axes[1], None, "IoU 0.5:0.95 (mean)")):
        curves = pr_curves(coco_eval, iou)
        for name, curve in zip(names, curves):
            if not np.isnan(curve).all():
                ax.plot(recall, curve, label=f"{name} {np.nanmean(curve):.3f}", linewidth=1)
        with np.errstate(invalid="ignore"):
            ax.plot(recall, np.nanmean(curves, axis=0), "k", linewidth=2.5,
                    label=f"all classes {np.nanmean(curves):.3f} AP")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"precision-recall, {title}")
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_f1(f1: np.ndarray, names: list[str], path: Path) -> Path:
    """F1 against the score threshold per class and on average, the best threshold marked."""
    threshold, best = best_threshold(f1)
    figure, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    for name, curve in zip(names, f1):
        if not np.isnan(curve).all():
            ax.plot(SCORE_GRID, curve, label=name, linewidth=1)
    with np.errstate(invalid="ignore"):
        ax.plot(SCORE_GRID, np.nanmean(f1, axis=0), "k", linewidth=2.5, label="all classes")
    ax.axvline(threshold, color="tab:red", linestyle="--", label=f"best {best:.3f} at score {threshold:.2f}")
    ax.set(xlabel="score threshold", ylabel="F1 (IoU 0.5)", xlim=(0, 1), ylim=(0, 1.02), title="F1 vs score threshold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(figure, path)
