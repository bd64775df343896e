"""Pictures after an evaluation, written to a run's plots/ folder: precision-recall and F1 curves with the best
score threshold, the confusion matrix, validation images beside their ground truth, the worst images, and
results.png (training curves). `python -m detect.analyze <run dir>` redraws them from the saved files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pycocotools.cocoeval import COCOeval

from detect.analysis.confusion import confusion_matrix, write_confusion
from detect.analysis.curves import best_threshold, f1_curve, plot_f1, plot_pr
from detect.analysis.history import plot_history
from detect.analysis.images import per_image_ap50, plot_image_pairs
from detect.model import Classes


def write_analysis(coco_eval: COCOeval, results: list[dict[str, Any]], classes: Classes, image_dir: Path | None,
                   folder: Path, metrics_csv: Path | None = None, num_images: int = 8) -> dict[str, Any]:
    """Every plot into `folder`; returns the best F1 score threshold (IoU 0.5), its F1, and the files written."""
    f1 = f1_curve(coco_eval)
    threshold, best_f1 = best_threshold(f1)
    files = [plot_pr(coco_eval, classes.names, folder / "pr_curves.png"),
             plot_f1(f1, classes.names, folder / "f1_curve.png")]
    matrix = confusion_matrix(coco_eval.cocoGt, results, classes, threshold, image_ids=list(coco_eval.params.imgIds))
    files += write_confusion(matrix, classes.names, threshold, folder)
    if image_dir is not None:
        ap = per_image_ap50(coco_eval)
        image_ids = sorted(coco_eval.params.imgIds)
        files.append(plot_image_pairs(coco_eval, results, classes, image_dir, image_ids[:num_images], threshold,
                                      f"validation images (score >= {threshold:.2f})", folder / "val_images.png", ap))
        worst = sorted(ap, key=lambda image_id: (ap[image_id], image_id))[:num_images]
        files.append(plot_image_pairs(coco_eval, results, classes, image_dir, worst, threshold,
                                      f"the {len(worst)} worst images by AP50", folder / "worst_images.png", ap))
    if metrics_csv is not None:
        files.append(plot_history(metrics_csv, folder / "results.png"))
    return {"best_f1_threshold": threshold, "best_f1": best_f1, "confusion_matrix": matrix.tolist(),
            "plots": [str(path) for path in files if path is not None]}
