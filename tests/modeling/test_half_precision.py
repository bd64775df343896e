"""Half precision keeps the boxes right: the networks run in bf16, while anchors, box decoding, clipping, score
filtering and NMS stay in float32. The model has COCO's 91 outputs with class 80's logit biased up: torchvision's
`batched_nms` moves each class apart by label x (largest coordinate + 1), ~1e5 at 800x1333, where bf16 steps by 512
px, so boxes of one class escape NMS unless it runs in float32. A ResNet-18 with a 32-channel FPN and a 64-wide box
head (random weights) keeps the class count and the coordinate range that matter at ~1 s per image on one core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY, compose_config, compose_train, write_checkpoint

from detect import Detector
from detect.engine.module import DetectionModule
from detect.export.openvino_runtime import PRECISION_HINTS, low_precision_tail
from detect.export.parity import detector_parity, same_class_overlaps
from detect.modeling.model import COCO_CLASSES, build_model

BIASED_LABEL = 80
SIZE = (800, 1333)  # min_size x max_size of configs/model: the image goes in unresized


def detections(result) -> dict[str, torch.Tensor]:
    return {"boxes": torch.from_numpy(result.boxes), "labels": torch.from_numpy(result.labels),
            "scores": torch.from_numpy(result.scores)}


@pytest.fixture(scope="module")
def many_class_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """(a train.py-style checkpoint with 91 outputs, class 80's logit +8; the model's NMS IoU)."""
    folder = tmp_path_factory.mktemp("many-classes")
    model_cfg = compose_config("infer", ["model/backbone=resnet18", "model.backbone.fpn_channels=32",
                                         "model.roi.representation_size=64"], folder).model
    path = folder / "coco91.ckpt"
    write_checkpoint(path, model_cfg, COCO_CLASSES)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["model.roi_heads.box_predictor.cls_score.bias"][BIASED_LABEL] += 8.0
    torch.save(checkpoint, path)
    return path, model_cfg.roi.nms_thresh


@pytest.fixture(scope="module")
def reference(many_class_model: tuple[Path, float]) -> dict[str, torch.Tensor]:
    """torch fp32's detections on `blocks_image()`: dozens of class-80 boxes up to x ~1333, none overlapping."""
    checkpoint, nms_iou = many_class_model
    output = detections(Detector.load(checkpoint, score_threshold=0.05, threads=1)(blocks_image()))
    assert len(output["boxes"]) >= 50 and (output["labels"] == BIASED_LABEL).all()
    assert output["boxes"][:, 2:].max() > 1000  # the coordinate range of the issue
    assert same_class_overlaps(output["boxes"], output["labels"], nms_iou) == 0
    return output


def blocks_image(size: tuple[int, int] = SIZE, block: int = 32) -> np.ndarray:
    """A BGR image of `block`-px squares of random colours: edges everywhere, proposals all over the frame."""
    blocks = np.random.default_rng(1).integers(0, 256, (size[0] // block + 1, size[1] // block + 1, 3), np.uint8)
    return np.ascontiguousarray(blocks.repeat(block, 0).repeat(block, 1)[:size[0], :size[1]])


@pytest.mark.slow  # two passes of an 800x1333 image: ~3 s
def test_bf16_keeps_nms_and_boxes_of_a_high_class_in_float32(many_class_model: tuple[Path, float],
                                                             reference: dict[str, torch.Tensor]) -> None:
    checkpoint, nms_iou = many_class_model
    half = detections(Detector.load(checkpoint, precision="bf16", score_threshold=0.05, threads=1)(blocks_image()))
    assert same_class_overlaps(half["boxes"], half["labels"], nms_iou) == 0
    parity = detector_parity([reference], [half], box_px=4.0, score_tol=0.02, score_thresh=0.05)
    assert parity.ok, parity.summary


@pytest.mark.slow  # an export, a conversion and two passes at 800x1333: ~10 s on a quiet machine
def test_openvino_bf16_keeps_decoding_and_nms_in_f32(many_class_model: tuple[Path, float],
                                                     reference: dict[str, torch.Tensor]) -> None:
    """The compiled graph runs nothing below f32 between the networks' last layers and the outputs (decoding,
    clipping, score filtering, NMS) while its networks do run in bf16; same-class pairs and parity as torch. (The
    int8 graph is checked in test_backends, on the trained checkpoint's quantized model.)"""
    import openvino as ov

    checkpoint, nms_iou = many_class_model
    detector = Detector.load(checkpoint, backend="openvino", precision="bf16", score_threshold=0.05, threads=1)
    hint = PRECISION_HINTS[detector.backend.precision]  # f32 on a CPU without bf16
    compiled = ov.Core().compile_model(detector.backend.files[0], "CPU", {"INFERENCE_PRECISION_HINT": hint})
    assert low_precision_tail(compiled) == []
    if detector.backend.precision == "bf16":
        assert low_precision_tail(compiled, stop_at=())  # the walk does see the networks' bf16 layers
    output = detections(detector(blocks_image()))
    assert len(output["boxes"]) >= 50 and same_class_overlaps(output["boxes"], output["labels"], nms_iou) == 0
    parity = detector_parity([reference], [output], box_px=4.0, score_tol=0.02, score_thresh=0.05)
    assert parity.ok, parity.summary


def test_evaluation_under_trainer_autocast_returns_float32_boxes() -> None:
    """Lightning's bf16-mixed / 16-mixed runs validation_step under torch.autocast: the module's model must still
    decode and suppress in float32."""
    torch.manual_seed(0)
    model = build_model(compose_train(TINY).model, len(COCO_CLASSES) + 1, pretrained_backbone=False).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[BIASED_LABEL] += 8.0
    module = DetectionModule(model, COCO_CLASSES, evaluator=None)
    image = torch.from_numpy(blocks_image((96, 128), 8)).permute(2, 0, 1).float() / 255
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = module.model([image])[0]
    assert len(output["boxes"]) > 0 and output["boxes"].dtype == torch.float32
    assert same_class_overlaps(output["boxes"], output["labels"], model.roi_heads.nms_thresh) == 0
