"""Where the AP goes, on hand-made cases with known answers: TIDE's dAP50 per error type, COCO's error curves (C75,
C50, Loc, Sim, Oth, BG, FN); results.png from TensorBoard's files; ground-truth panels without scores."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from torch.utils.tensorboard import SummaryWriter

import detect.utils.drawing
from detect.analysis.coco_errors import curve_summary, error_curves
from detect.analysis.error_plot import plot_errors
from detect.analysis.history import history_panels, plot_history, read_history
from detect.analysis.images import _drawn
from detect.analysis.tide import tide_breakdown
from detect.evaluation.coco import evaluate_coco, load_results
from detect.structures import Classes


def make_coco(boxes: list[tuple[int, int, list[float]]], categories: list[dict]) -> COCO:
    """An in-memory ground truth: (image id, category id, xywh box) per box, images 1 and 2 of 100 x 100."""
    coco = COCO()
    coco.dataset = {"images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2)],
                    "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3],
                                     "iscrowd": 0} for k, (i, c, b) in enumerate(boxes)],
                    "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def found(image_id: int, category_id: int, score: float, bbox: list[float]) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


# Two classes; class 1 has boxes A (image 1) and C (image 2), class 2 box B (image 1).
TRUTH = [(1, 1, [10, 10, 40, 40]), (1, 2, [60, 10, 30, 30]), (2, 1, [10, 50, 30, 30])]
HITS = [found(1, 1, 0.9, [10, 10, 40, 40]), found(1, 2, 0.9, [60, 10, 30, 30])]
C_HIT = found(2, 1, 0.8, [10, 50, 30, 30])
HALF = 50 / 202  # class 1 found to recall 1/2 only: AP (51/101 + 1) / 2, 1 - that once fixed
CASES = {
    "loc": ([*HITS, found(2, 1, 0.8, [22, 58, 30, 30])], HALF),  # C at IoU 0.28: a localisation error
    "dupe": ([*HITS, found(1, 1, 0.85, [12, 12, 40, 40]), C_HIT], 1 / 2 - (51 + 100 / 3) / 202),  # A found twice
    "miss": (HITS, HALF),  # C not found
    "cls": ([*HITS, found(2, 2, 0.8, [10, 50, 30, 30])], HALF),  # C called class 2
    "bkg": ([*HITS, C_HIT, found(2, 1, 0.95, [70, 70, 20, 20])], 1 / 6),  # class 1 on nothing, ranked first
}


@pytest.mark.parametrize("kind", CASES)
def test_tide_costs_one_error_of_each_type_what_fixing_it_gains(kind: str) -> None:
    coco = make_coco(TRUTH, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    results, cost = CASES[kind]
    tide = tide_breakdown(coco, results, [1, 2])
    assert tide["AP50"] == pytest.approx(1 - cost)
    assert tide["AP50"] == pytest.approx(evaluate_coco(coco, results, Classes(["a", "b"], [1, 2])).stats["AP50"])
    assert tide["dAP50"] == pytest.approx({k: cost if k == kind else 0.0 for k in tide["dAP50"]})
    assert tide["errors"] == {k: int(k == kind) for k in tide["errors"]}


def test_tide_on_perfect_predictions_finds_no_error() -> None:
    coco = make_coco(TRUTH, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    tide = tide_breakdown(coco, [*HITS, C_HIT], [1, 2])
    assert tide["AP50"] == 1.0 and set(tide["dAP50"].values()) == {0.0} and set(tide["errors"].values()) == {0}


# Classes 1 and 2 share supercategory "x", class 3 is "y". Every box is found; class 1 is also detected, ranked
# first, on the class 2 box (a similar class) and on the class 3 box (another class).
CURVE_TRUTH = [(1, 1, [10, 10, 40, 40]), (1, 2, [60, 10, 30, 30]), (1, 3, [10, 60, 30, 30])]
CURVE_RESULTS = [found(1, 1, 0.9, [10, 10, 40, 40]), found(1, 2, 0.9, [60, 10, 30, 30]),
                 found(1, 3, 0.9, [10, 60, 30, 30]), found(1, 1, 0.95, [60, 10, 30, 30]),
                 found(1, 1, 0.93, [10, 60, 30, 30])]


@pytest.mark.parametrize("supercategories", [True, False])
def test_error_curves_forgive_similar_then_other_classes(supercategories: bool, tmp_path: Path) -> None:
    groups = {1: "x", 2: "x", 3: "y"}
    categories = [{"id": c, "name": f"c{c}", **({"supercategory": groups[c]} if supercategories else {})}
                  for c in (1, 2, 3)]
    coco = make_coco(CURVE_TRUTH, categories)
    analysis = error_curves(coco, load_results(coco, CURVE_RESULTS), [1, 2])
    summary = curve_summary(analysis, Classes(["c1", "c2", "c3"], [1, 2, 3]))
    # class 1: two false positives above its hit -> precision 1/3 at every recall; 1/2 once the similar-class one
    # is forgiven, 1 once both are; classes 2 and 3 are perfect
    sim = (1 / 2 + 2) / 3 if supercategories else (1 / 3 + 2) / 3  # no supercategories: Sim = Loc
    assert summary["AP"] == pytest.approx({"C75": 7 / 9, "C50": 7 / 9, "Loc": 7 / 9, "Sim": sim, "Oth": 1.0,
                                           "BG": 1.0, "FN": 1.0})
    assert summary["per_class"]["c1"]["Oth"] == 1.0 and summary["per_class"]["c2"]["C50"] == 1.0
    assert ("no supercategories" in summary["Sim"]) is not supercategories
    tide = tide_breakdown(coco, CURVE_RESULTS, [1, 2])
    assert tide["errors"]["cls"] == 2  # the two confusions
    assert plot_errors(analysis, tide, tmp_path / "errors.png").stat().st_size > 10_000


def test_error_curves_bound_each_other_on_a_random_set() -> None:
    from benchmarks.synthetic_eval import synthetic_val

    coco, results, classes = synthetic_val(20, detections=40)
    analysis = error_curves(coco, load_results(coco, results), sorted(coco.imgs))
    steps = np.diff(analysis["curves"], axis=0)
    assert (steps[~np.isnan(steps)] >= -1e-12).all()  # each curve on or above the one before
    stats = evaluate_coco(coco, results, classes).stats
    summary = curve_summary(analysis, classes)["AP"]
    assert summary["C75"] == pytest.approx(stats["AP75"]) and summary["C50"] == pytest.approx(stats["AP50"])


def test_results_png_from_tensorboard_files(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    for step, loss in enumerate([1.5, 1.0, 0.7]):
        writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("val/AP", 0.25, 2)
    writer.add_scalar("epoch", 0, 2)
    writer.close()
    history = read_history(tmp_path)
    assert history == {"train/loss": [(0, 1.5), (1, 1.0), (2, pytest.approx(0.7))], "val/AP": [(2, 0.25)]}
    assert plot_history(tmp_path, tmp_path / "plots" / "results.png").is_file()
    assert plot_history(tmp_path / "nothing", tmp_path / "none.png") is None


def test_ground_truth_panels_show_names_without_a_score(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = []
    monkeypatch.setattr(detect.utils.drawing, "_label", lambda image, text, *args: texts.append(text))
    image = np.zeros((100, 100, 3), np.uint8)
    classes = Classes(["a", "b"], [1, 2])
    _drawn(image, [{"category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0}], classes)
    _drawn(image, [found(1, 1, 0.875, [1, 1, 5, 5])], classes)
    assert texts == ["b", "a 0.88"]


def test_results_png_draws_each_validation_loss_beside_its_training_loss() -> None:
    keys = ["val/AP50", "train/loss", "val/loss", "train/loss_classifier", "lr-SGD", "val/AP", "val/loss_classifier",
            "train/loss_objectness"]
    assert history_panels(keys) == [["lr-SGD"], ["train/loss", "val/loss"], ["train/loss_classifier",
                                    "val/loss_classifier"], ["train/loss_objectness"], ["val/AP", "val/AP50"]]
