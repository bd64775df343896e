"""The pictures after training on hand-made predictions with known counts: confusion matrix, PR and F1 data, the
best threshold, per-image AP, and `python -m detect analyze` on a saved run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, write_coco

from detect.analysis.__main__ import analyze
from detect.analysis.confusion import confusion_matrix
from detect.analysis.curves import SCORE_GRID, best_threshold, f1_curve, pr_curves
from detect.analysis.images import per_image_ap50
from detect.data.coco import load_coco
from detect.evaluation.coco import evaluate_coco
from detect.structures import Classes
from detect.utils.errors import DetectError

CLASSES = Classes(["cat", "dog"], [1, 2])
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def gt(ann_id: int, image_id: int, category_id: int, bbox: list[float]) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "area": bbox[2] * bbox[3], "iscrowd": 0}


def found(image_id: int, category_id: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


@pytest.fixture
def two_images(tmp_path: Path) -> Path:
    images = [{"id": i, "file_name": f"{i}.png", "width": 96, "height": 64} for i in (1, 2)]
    annotations = [gt(1, 1, 1, [5, 5, 20, 20]), gt(2, 1, 2, [50, 10, 30, 30]), gt(3, 2, 1, [10, 10, 40, 40])]
    return write_coco(tmp_path, images, annotations, CATEGORIES)


def test_confusion_matrix_counts_confusions_misses_and_false_detections(two_images: Path) -> None:
    results = [found(1, 2, [5, 5, 20, 20], 0.9),      # a cat called dog
               found(1, 2, [51, 10, 30, 30], 0.8),    # the dog
               found(1, 1, [70, 40, 20, 20], 0.7),    # a cat where there is nothing
               found(2, 1, [10, 10, 40, 40], 0.2)]    # the second cat, under the threshold: missed
    matrix = confusion_matrix(load_coco(two_images), results, CLASSES, score_threshold=0.5)
    #                    predicted: cat dog background
    assert matrix.tolist() == [[0, 1, 1],   # true cat
                               [0, 1, 0],   # true dog
                               [1, 0, 0]]   # background
    assert confusion_matrix(load_coco(two_images), results, CLASSES, 0.1)[0].tolist() == [1, 1, 0]


def test_pr_and_f1_curves_and_the_best_threshold_on_a_known_case(two_images: Path) -> None:
    # cats: two ground truths. Ranked: a hit (0.9), a false positive (0.8), the second hit (0.3).
    results = [found(1, 1, [5, 5, 20, 20], 0.9), found(2, 1, [60, 0, 10, 10], 0.8), found(2, 1, [10, 10, 40, 40], 0.3),
               found(1, 2, [50, 10, 30, 30], 0.95)]
    evaluation = evaluate_coco(load_coco(two_images), results, CLASSES)
    precision = pr_curves(evaluation.coco_eval, 0.5)
    recall = evaluation.coco_eval.params.recThrs
    # COCO's interpolated precision: 1 up to recall 0.5, then 2/3 (2 hits in 3) up to recall 1
    np.testing.assert_allclose(precision[0][recall <= 0.5], 1.0)
    np.testing.assert_allclose(precision[0][recall > 0.5], 2 / 3)
    np.testing.assert_allclose(precision[1], 1.0)  # the dog: one hit
    f1 = f1_curve(evaluation.coco_eval)
    cat = dict(zip(np.round(SCORE_GRID, 2), f1[0]))
    assert cat[0.3] == pytest.approx(0.8) and cat[0.31] == pytest.approx(2 / 3) and cat[0.91] == 0.0
    threshold, best = best_threshold(f1)
    assert threshold == pytest.approx(0.30) and best == pytest.approx((0.8 + 1.0) / 2)
    ap = per_image_ap50(evaluation.coco_eval)
    assert ap[1] == pytest.approx(1.0)  # both hits ranked first
    assert ap[2] == pytest.approx(0.5)  # its only cat found after a false positive: precision 1/2


def write_run(run: Path, val_json: Path, results: list[dict]) -> None:
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "predictions.json").write_text(json.dumps(results))
    (run / "eval" / "metrics.json").write_text(json.dumps({"val_json": str(val_json),
                                                           "val_images": str(val_json.parent / "images")}))
    (run / "csv").mkdir()
    with open(run / "csv" / "metrics.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "step", "lr-SGD", "train/loss", "val/AP", "val/AP50", "val/AP75"])
        writer.writerows([[0, 9, 0.01, 1.5, "", "", ""], [0, 19, 0.02, 0.9, "", "", ""], [0, 19, "", "", 0.4, 0.6, 0.3]])


@pytest.mark.slow  # an interpreter start (~10 s)
def test_analyze_command_redraws_a_saved_run(two_images: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, two_images, [found(1, 1, [5, 5, 20, 20], 0.9), found(1, 2, [50, 10, 30, 30], 0.8),
                                found(2, 1, [10, 10, 40, 40], 0.6)])
    process = subprocess.run([sys.executable, "-m", "detect", "analyze", str(run)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert "AP 1.000, AP50 1.000; best F1 1.000 at score threshold 0.60" in process.stdout
    names = {path.name for path in (run / "plots").iterdir()}
    assert names == {"pr_curves.png", "f1_curve.png", "confusion_matrix.png", "confusion_matrix.csv",
                     "val_images.png", "worst_images.png", "errors.png", "results.png"}
    assert "TIDE (AP50 points lost): cls 0.00, loc 0.00" in process.stdout
    errors = json.loads((run / "eval" / "metrics.json").read_text())["errors"]
    assert errors["tide"]["AP50"] == 1.0 and errors["coco_error_curves"]["AP"]["C50"] == 1.0
    rows = list(csv.reader(open(run / "plots" / "confusion_matrix.csv")))
    assert rows[0] == ["true \\ predicted", "cat", "dog", "background"] and rows[1][1:] == ["2", "0", "0"]
    with pytest.raises(DetectError, match="nowhere/eval/metrics.json does not exist; pass the folder of a train.py"):
        analyze(tmp_path / "nowhere")
    (run / "eval" / "predictions.json").write_text(json.dumps([{"image_id": 1, "score": 0.5}]))
    with pytest.raises(DetectError, match=r"^predictions: record 0 is not a COCO result with image_id, category_id, "
                                          r"bbox, score; fix or drop that record"):
        analyze(run)
