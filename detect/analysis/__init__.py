"""Pictures after an evaluation, written to a run's plots/ folder: precision-recall and F1 curves with the best
score threshold, the confusion matrix, validation images beside their ground truth, the worst images, the error
breakdown (errors.png: COCO's error curves and TIDE), and results.png (training curves). `python -m detect analyze
<run dir>` redraws them from the saved files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detect.analysis.coco_errors import curve_summary, error_curves
from detect.analysis.confusion import confusion_matrix, write_confusion
from detect.analysis.curves import best_threshold, f1_curve, plot_f1, plot_pr
from detect.analysis.error_plot import plot_errors
from detect.analysis.history import plot_history
from detect.analysis.images import per_image_ap50, plot_image_pairs
from detect.analysis.tide import tide_breakdown
from detect.structures import Classes


def write_analysis(coco_eval: Any, results: list[dict[str, Any]], classes: Classes, image_dir: Path | None,
                   folder: Path, run_dir: Path | None = None, num_images: int = 8,
                   backend: str = "faster") -> dict[str, Any]:
    """Every plot into `folder` (results.png from what `run_dir`'s logger recorded, with `run_dir`); `coco_eval` is
    the COCOeval of `backend` that scored `results`. Returns the best F1 score threshold (IoU 0.5), its F1, the
    error breakdown (for metrics.json) and the files written."""
    image_ids = sorted(int(image_id) for image_id in coco_eval.params.imgIds)
    f1 = f1_curve(coco_eval)
    threshold, best_f1 = best_threshold(f1)
    files = [plot_pr(coco_eval, classes.names, folder / "pr_curves.png"),
             plot_f1(f1, classes.names, folder / "f1_curve.png")]
    matrix = confusion_matrix(coco_eval.cocoGt, results, classes, threshold, image_ids=image_ids)
    files += write_confusion(matrix, classes.names, threshold, folder)
    if image_dir is not None:
        ap = per_image_ap50(coco_eval)
        files.append(plot_image_pairs(coco_eval, results, classes, image_dir, image_ids[:num_images], threshold,
                                      f"validation images (score >= {threshold:.2f})", folder / "val_images.png", ap))
        worst = sorted(ap, key=lambda image_id: (ap[image_id], image_id))[:num_images]
        files.append(plot_image_pairs(coco_eval, results, classes, image_dir, worst, threshold,
                                      f"the {len(worst)} worst images by AP50", folder / "worst_images.png", ap))
    curves = error_curves(coco_eval.cocoGt, coco_eval.cocoDt, image_ids, backend)
    tide = tide_breakdown(coco_eval.cocoGt, results, image_ids)
    files.append(plot_errors(curves, tide, folder / "errors.png"))
    if run_dir is not None:
        files.append(plot_history(run_dir, folder / "results.png"))
    return {"best_f1_threshold": threshold, "best_f1": best_f1, "confusion_matrix": matrix.tolist(),
            "errors": {"tide": tide, "coco_error_curves": curve_summary(curves, classes)},
            "plots": [str(path) for path in files if path is not None]}


def error_line(errors: dict[str, Any]) -> str:
    """The error breakdown of `write_analysis` in two lines: TIDE's dAP50 per type, the AP of each COCO error curve."""
    tide, curves = errors["tide"], errors["coco_error_curves"]["AP"]
    return ("TIDE (AP50 points lost): " + ", ".join(f"{k} {100 * v:.2f}" for k, v in tide["dAP50"].items())
            + f"; all FP {100 * tide['dAP50_all_false_positives']:.2f}, all FN "
            f"{100 * tide['dAP50_all_false_negatives']:.2f}\nCOCO error curves (AP): "
            + ", ".join(f"{k} {v:.3f}" for k, v in curves.items()))
