"""The evaluator on hand-made cases with known AP, against plain pycocotools, its two backends against each other on
a small COCO-val2017-like set, and bad predictions answered in one line."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from benchmarks.coco_eval import largest_difference
from benchmarks.synthetic_eval import synthetic_val
from detect.analysis.coco_errors import error_curves
from detect.analysis.images import per_image_ap50
from detect.data.coco import load_coco
from detect.evaluation.coco import BACKENDS, CocoEvaluator, evaluate_coco, write_evaluation
from detect.structures import Classes, to_coco_results
from detect.utils.errors import DetectError


def _gt_results(coco_path: Path) -> list[dict]:
    coco = json.loads(coco_path.read_text())
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in coco["annotations"] if not a["iscrowd"] and a["bbox"][2] > 0]


CLASSES = Classes(["car", "cat", "toothbrush"], [3, 17, 90])


def test_perfect_predictions_score_one(gappy_coco: Path) -> None:
    evaluation = evaluate_coco(load_coco(gappy_coco), _gt_results(gappy_coco), CLASSES)
    # pycocotools keeps the zero-width car box of the annotation file as a ground truth nothing can match:
    # car recall stops at 1/2, which is 51 of the 101 recall points
    assert [row["AP"] for row in evaluation.per_class] == pytest.approx([51 / 101, 1.0, 1.0])
    assert evaluation.stats["AP"] == pytest.approx((51 / 101 + 2) / 3)
    assert evaluation.summary.count("\n") == 11  # pycocotools' 12-line summary


def test_known_misses(gappy_coco: Path) -> None:
    coco = load_coco(gappy_coco)
    results = _gt_results(gappy_coco)
    cat = next(r for r in results if r["category_id"] == 17)
    # cat: a false positive ranked above the true one -> precision 1/2 at every recall: AP 0.5
    false_cat = {**cat, "bbox": [40.0, 0.0, 10.0, 10.0], "score": 0.9}
    cat["score"] = 0.8
    # toothbrush: not detected at all -> AP 0
    results = [r for r in results if r["category_id"] != 90] + [false_cat]
    evaluation = evaluate_coco(coco, results, CLASSES)
    per_class = {row["class"]: row["AP"] for row in evaluation.per_class}
    assert per_class == pytest.approx({"car": 51 / 101, "cat": 0.5, "toothbrush": 0.0})
    assert evaluation.stats["AR100"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_half_recall_gives_51_of_101_points(tmp_path: Path) -> None:
    from helpers import write_coco
    images = [{"id": 1, "file_name": "x.png", "width": 100, "height": 100}]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 5, "bbox": [10 + 40 * i, 10, 30, 30], "area": 900,
             "iscrowd": 0} for i in range(2)]
    path = write_coco(tmp_path, images, anns, [{"id": 5, "name": "thing"}])
    results = [{"image_id": 1, "category_id": 5, "bbox": [10, 10, 30, 30], "score": 0.9}]
    evaluation = evaluate_coco(load_coco(path), results, Classes(["thing"], [5]))
    assert evaluation.stats["AP50"] == pytest.approx(51 / 101)  # precision 1 on recall points 0, 0.01, ..., 0.5


def test_same_stats_as_plain_pycocotools(gappy_coco: Path) -> None:
    coco = load_coco(gappy_coco)
    rng = np.random.default_rng(1)
    results = []
    for image_id in (10, 11, 12):
        for _ in range(15):
            x, y = rng.uniform(0, 40, 2)
            w, h = rng.uniform(2, 30, 2)
            results.append({"image_id": image_id, "category_id": int(rng.choice([3, 17, 90])),
                            "bbox": [x, y, w, h], "score": float(rng.uniform())})
    results += _gt_results(gappy_coco)
    ours = evaluate_coco(coco, results, CLASSES, backend="pycocotools")
    faster = evaluate_coco(coco, results, CLASSES)  # the default backend
    with contextlib.redirect_stdout(io.StringIO()):
        plain = COCOeval(coco, coco.loadRes(results), iouType="bbox")
        plain.evaluate()
        plain.accumulate()
        plain.summarize()
    assert list(ours.stats.values()) == plain.stats.tolist()
    assert list(faster.stats.values()) == pytest.approx(plain.stats.tolist(), abs=1e-12)
    assert faster.summary == ours.summary  # the same 12 printed lines


def test_backends_agree_on_a_small_val2017_like_set() -> None:
    # 80 classes in 12 supercategories, boxes of every size, 1 % crowd; shifted, confused, duplicated and missed
    # detections plus background ones, 50 an image
    coco, results, classes = synthetic_val(30, detections=50)
    assert len(results) > 1400 and any(a["iscrowd"] for a in coco.anns.values())
    faster, reference = (evaluate_coco(coco, results, classes, backend=b) for b in ("faster", "pycocotools"))
    assert 0.05 < reference.stats["AP"] < 0.9 and reference.stats["APs"] > 0 and reference.stats["APl"] > 0
    assert largest_difference(faster, reference) < 1e-4  # the 12 stats and every class's AP and AP50
    assert per_image_ap50(faster.coco_eval) == per_image_ap50(reference.coco_eval)  # worst_images.png's order
    curves = [error_curves(coco, faster.coco_eval.cocoDt, sorted(coco.imgs), b)["curves"] for b in BACKENDS]
    np.testing.assert_allclose(*curves, atol=1e-12)


def test_model_outputs_become_coco_results_in_original_ids() -> None:
    outputs = [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "labels": torch.tensor([3]),
                "scores": torch.tensor([0.75])}]
    assert to_coco_results(outputs, [42], [3, 17, 90]) == [
        {"image_id": 42, "category_id": 90, "bbox": [10.0, 20.0, 20.0, 40.0], "score": 0.75}]


def test_evaluator_counts_a_repeated_image_once_and_writes_files(gappy_coco: Path, tmp_path: Path) -> None:
    evaluator = CocoEvaluator(load_coco(gappy_coco), CLASSES)
    outputs = [{"boxes": torch.tensor([[4.0, 5.0, 24.0, 15.0]]), "labels": torch.tensor([2]),
                "scores": torch.tensor([0.9])}]
    evaluator.update(outputs, [10])
    evaluator.update(outputs, [10])  # DistributedSampler padding repeats an image
    evaluation, results = evaluator.compute()
    assert len(results) == 1
    assert {row["class"]: row["AP"] for row in evaluation.per_class}["cat"] == pytest.approx(1.0)
    assert evaluation.stats["AR100"] == pytest.approx(1 / 2)  # only image 10 was predicted: cat found, toothbrush not
    write_evaluation(evaluation, results, tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "predictions.json").read_text()) == results
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["stats"]["AR100"] == pytest.approx(0.5)
    assert "toothbrush" in (tmp_path / "eval" / "per_class_ap.txt").read_text()


def test_no_detections_score_zero(gappy_coco: Path) -> None:
    assert evaluate_coco(load_coco(gappy_coco), [], CLASSES).stats["AP"] == 0.0


@pytest.mark.parametrize(("change", "message"), [
    ({"image_id": 99}, "record 1 has image_id 99, which is not an image of the ground truth"),
    ({"category_id": 5}, "record 1 has category_id 5, which is not a category of the ground truth"),
    ({"bbox": [1.0, float("nan"), 3.0, 4.0]}, "record 1 has a bbox [1.0, nan, 3.0, 4.0] or score 0.5 that is not a"),
    ({"score": float("inf")}, "record 1 has a bbox [1.0, 2.0, 3.0, 4.0] or score inf that is not a finite number"),
    ({"bbox": [1, 2, 3]}, "record 1 has bbox [1, 2, 3]; it must be [x, y, width, height]"),
])
@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_bad_predictions_name_the_first_offender(gappy_coco: Path, change: dict, message: str, backend: str) -> None:
    good = {"image_id": 10, "category_id": 17, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    results = [good, {**good, **change}, {**good, "image_id": 1234}]  # the second is named, not the third
    with pytest.raises(DetectError, match=r"^predictions: " + re.escape(message)):
        evaluate_coco(load_coco(gappy_coco), results, CLASSES, backend=backend)
    with pytest.raises(DetectError, match="evaluation.backend='fast' is not allowed; choose one of faster, pycoco"):
        evaluate_coco(load_coco(gappy_coco), [good], CLASSES, backend="fast")


@pytest.mark.slow  # the session's trained run (trained once for several test files)
def test_backends_agree_on_a_trained_models_predictions(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    coco = load_coco(metrics["val_json"])
    classes = Classes([coco.cats[c]["name"] for c in sorted(coco.cats)], sorted(coco.cats))
    results = json.loads((trained_run / "eval" / "predictions.json").read_text())
    faster, reference = (evaluate_coco(coco, results, classes, backend=b) for b in ("faster", "pycocotools"))
    assert reference.stats["AP50"] > 0.05 and len(results) > 50
    assert largest_difference(faster, reference) < 1e-4
    assert faster.stats == pytest.approx(metrics["stats"])  # what the run wrote (the default backend)
