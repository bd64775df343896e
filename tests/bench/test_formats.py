"""The format table's pieces that need no trained run: format specs, the many-class copy of a checkpoint, and the
status of a row whose precision the CPU lacks or runs slower than fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_infer, write_checkpoint

from detect import Detector
from detect.bench.formats import judge, parse_format
from detect.bench.many_classes import many_class_checkpoint
from detect.export.parity import detector_parity
from detect.structures import Classes
from detect.utils.errors import DetectError


def test_parse_format_reads_an_optional_output_count() -> None:
    assert parse_format("torch/bf16") == ("torch", "bf16", None)
    assert parse_format("openvino/int8/91") == ("openvino", "int8", 91)
    with pytest.raises(DetectError, match="torch/bf16/91"):
        parse_format("torch/bf16/many")


def test_many_class_copy_detects_the_same_boxes_under_the_last_labels(tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny.ckpt"
    write_checkpoint(checkpoint, compose_infer(["source=x"], tmp_path).model, Classes(["cat", "dog"], [17, 42]))
    wide = many_class_checkpoint(checkpoint, 91, tmp_path / "wide.ckpt")
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    own, many = (Detector.load(path, score_threshold=0.05, threads=1) for path in (checkpoint, wide))
    assert many.classes[-2:] == ["cat", "dog"] and len(many.classes) == 90
    assert many.backend.classes.category_ids[-2:] == [17, 42] and len(set(many.backend.classes.category_ids)) == 90
    expected, result = own(image), many(image)
    assert len(expected.boxes) > 0
    shifted = {"boxes": torch.from_numpy(result.boxes), "labels": torch.from_numpy(result.labels) - 88,
               "scores": torch.from_numpy(result.scores)}
    reference = {"boxes": torch.from_numpy(expected.boxes), "labels": torch.from_numpy(expected.labels),
                 "scores": torch.from_numpy(expected.scores)}
    assert detector_parity([reference], [shifted], box_px=1e-3, score_tol=1e-5).ok


def test_a_precision_the_cpu_lacks_says_what_ran_instead_of_passed() -> None:
    rows = [{"format": "torch", "precision": "fp32", "outputs": None, "status": "measured", "ran": "fp32",
             "AP": 0.5, "p50_ms": 10.0},
            {"format": "openvino", "precision": "bf16", "outputs": None, "status": "measured", "ran": "fp32",
             "AP": 0.5, "p50_ms": 8.0},
            {"format": "openvino", "precision": "bf16", "outputs": 91, "status": "measured", "ran": "bf16",
             "AP": 0.4, "p50_ms": 6.0},
            {"format": "torch", "precision": "bf16", "outputs": None, "status": "measured", "ran": "bf16",
             "slow": "this CPU has neither avx512_bf16 nor amx_bf16", "AP": 0.5, "p50_ms": 37.0}]
    judge(rows, gate_points=1.0)
    assert [row["status"] for row in rows[:3]] == ["passed", "ran fp32: this CPU has no bf16",
                                                   "exported, accuracy gate failed"]
    assert rows[3]["status"].startswith("passed; slower than fp32: this CPU has neither avx512_bf16 nor amx_bf16")
    assert "fp32 or openvino" in rows[3]["status"]
