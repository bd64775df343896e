"""detect.export.precision_check: int8 / bf16 IRs compared with fp32 where they run, the verdict kept per CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detect.export.precision_check import CHECKS_FILE, MIN_BOXES, box_agreement, compare, cpu_key
from detect.structures import Classes


def output(*boxes: tuple[float, float, float, float, int, float]) -> dict[str, torch.Tensor]:
    """One image's detections from (x1, y1, x2, y2, label, score) rows."""
    rows = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 6)
    return {"boxes": rows[:, :4], "labels": rows[:, 4].long(), "scores": rows[:, 5]}


def test_box_agreement_counts_matches_both_ways() -> None:
    a, b = (0, 0, 10, 10, 1, 0.9), (20, 20, 40, 40, 2, 0.8)
    assert box_agreement([output(a, b)], [output(b, a)]) == (1.0, 2)
    assert box_agreement([output(a, b)], [output(a)]) == (0.5, 2)  # a box lost
    assert box_agreement([output(a)], [output(a, b)]) == (0.5, 1)  # a box made up
    assert box_agreement([output(a)], [output((0, 0, 10, 10, 3, 0.9))]) == (0.0, 1)  # another class
    assert box_agreement([output(a)], [output((5, 0, 15, 10, 1, 0.9))]) == (0.0, 1)  # IoU 1/3
    assert box_agreement([output(a), output()], [output(a), output((0, 0, 5, 5, 1, 0.1))]) == (1.0, 1)  # faint
    assert box_agreement([output()], [output()]) == (1.0, 0)
    assert box_agreement([output()], [output(b)]) == (0.0, 0)


def test_labelled_images_add_ap_and_a_lower_ap_fails_the_check() -> None:
    """Boxes 6 px off agree at IoU 0.5 (the box check passes) but lose AP at IoU 0.75 and up: the check fails on AP,
    and its line gives both APs; without labels the same outputs pass."""
    classes = Classes(["square"], [3])
    labels = {"images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (7, 9)],
              "annotations": [{"id": i, "image_id": i, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600,
                               "iscrowd": 0} for i in (7, 9)],
              "categories": [{"id": 3, "name": "square"}]}
    images = [np.zeros((64, 64, 3), np.uint8)] * 2

    def detector(x1: float):
        return lambda inputs: [output((x1, 10, x1 + 40, 50, 1, 0.9)) for _ in inputs]

    exact = compare(detector(10), detector(10), "int8", images, labels, classes)
    assert (exact.ap, exact.ap_fp32, exact.passed) == (1.0, 1.0, True)
    shifted = compare(detector(10), detector(16), "int8", images, labels, classes)
    assert shifted.agreement == 1.0 and shifted.ap == pytest.approx(0.5) and not shifted.passed
    assert "AP 0.500 against fp32's 1.000 on their labels (at most 1 point lower passes)" in shifted.summary()
    unlabelled = compare(detector(10), detector(16), "int8", images)
    assert unlabelled.ap is None and unlabelled.passed


def write_verdict(ir: Path, agreement: float) -> None:
    record = {"precision": "int8", "agreement": agreement, "boxes": 50, "images": 8}
    (ir.parent / CHECKS_FILE).write_text(json.dumps({cpu_key(): {"int8": record}}))


@pytest.mark.slow
def test_int8_runs_where_its_check_passed_and_fp32_where_it_failed(trained_run: Path,
                                                                  capfd: pytest.CaptureFixture) -> None:
    from detect import Detector

    weights = trained_run / "checkpoints" / "best.ckpt"
    first = Detector.load(weights, backend="openvino", precision="int8")
    ir = first.backend.files[0]
    checks = ir.parent / CHECKS_FILE
    # the tiny detector finds few shapes on 8 val images: no verdict, said, nothing recorded
    assert first.backend.precision == "int8" and not checks.exists()
    assert "not checked on this CPU" in capfd.readouterr().err and f"{MIN_BOXES} decide" in first.backend.description

    write_verdict(ir, 0.95)  # as a conclusive check on this CPU leaves it: read, not run again
    passed = Detector.load(weights, backend="openvino", precision="int8")
    assert passed.backend.precision == "int8" and "checked on this CPU: int8 agrees with fp32 on 95%" in \
        passed.backend.description and capfd.readouterr().err == ""

    write_verdict(ir, 0.4)
    failed = Detector.load(weights, backend="openvino", precision="int8")
    assert failed.backend.precision == "fp32" and failed.backend.files[0] != ir  # the f32 IR it was quantized from
    line = capfd.readouterr().err.strip()
    assert line == (f"openvino: int8 agrees with fp32 on 40% of the boxes (50 fp32 boxes, 8 images; at least 80% "
                    f"passes) on this CPU ({cpu_key()}): running fp32 instead; precision_check=false runs int8 "
                    "anyway"), line
    insisted = Detector.load(weights, backend="openvino", precision="int8", precision_check=False)
    assert insisted.backend.precision == "int8" and "precision_check=false" in insisted.backend.description

    other = {"AMD EPYC (avx2), ONEDNN_MAX_CPU_ISA=AVX2": {"int8": {**json.loads(checks.read_text())[cpu_key()]
                                                                   ["int8"], "agreement": 1.0}}}
    checks.write_text(json.dumps(other))  # another CPU's verdict says nothing here
    again = Detector.load(weights, backend="openvino", precision="int8")
    assert "not checked on this CPU" in again.backend.description
