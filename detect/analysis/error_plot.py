"""errors.png: COCO's analyze() error curves over all classes (filled between successive curves, each labelled with
its AP as in cocoapi's figures) beside the TIDE breakdown (AP50 points each error type costs)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from detect.analysis.coco_errors import CURVES
from detect.utils.plotting import plt, save_figure

COLORS = ("#eeeeee", "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd")  # as cocoapi: C75 area first


def plot_errors(curves: dict[str, Any], tide: dict[str, Any], path: Path) -> Path:
    """The curves' mean over the classes with ground truth (left) and TIDE's dAP50 per error type (right)."""
    with warnings.catch_warnings():  # classes without ground truth are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves["curves"], axis=2)  # curve x recall
    recall = curves["recall"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    below = np.zeros_like(recall)
    for name, curve, color in zip(CURVES, mean, COLORS):
        curve = np.nan_to_num(curve)
        left.fill_between(recall, below, curve, color=color, edgecolor="black", linewidth=0.6,
                          label=f"[{curve.mean():.3f}] {name}")
        below = np.maximum(below, curve)
    sim = "" if curves["supercategories"] else " (no supercategories: Sim = Loc)"
    left.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=f"COCO error curves, all classes, area all{sim}")
    left.legend(loc="lower left", fontsize=8)
    names = [*tide["dAP50"], "all FP", "all FN"]
    values = [*tide["dAP50"].values(), tide["dAP50_all_false_positives"], tide["dAP50_all_false_negatives"]]
    counts = [*(f"({tide['errors'][name]} errors)" for name in tide["dAP50"]), "", ""]
    bars = right.barh(range(len(names)), np.asarray(values) * 100, color=[*["tab:red"] * 6, "tab:gray", "tab:gray"])
    right.bar_label(bars, labels=[f"{100 * v:.2f} {c}".rstrip() for v, c in zip(values, counts)], fontsize=8,
                    padding=3)
    right.set_yticks(range(len(names)), names)
    right.invert_yaxis()
    right.set_xlim(0, max(1.0, 130 * max(values)))
    right.set(xlabel="AP50 points gained by fixing them (dAP50 x 100)",
              title=f"TIDE: AP50 {100 * tide['AP50']:.2f}, what each error type costs")
    right.grid(alpha=0.3, axis="x")
    return save_figure(figure, path)
