"""ONNX export of the classifier and the detector, ONNX Runtime runs, and the parity checks between them and PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, VIDEO, compose_config, compose_infer, needs_video, write_checkpoint, write_clip, write_images

from detect.export.command import export_model
from detect.export.images import source_images
from detect.export.onnx_export import build_network, export_onnx, parse_size
from detect.export.onnx_runtime import OnnxDetector, OnnxModel
from detect.export.parity import detector_parity, tensor_parity
from detect.structures import Classes
from detect.utils.errors import DetectError

# A detector small enough to export and run in seconds: 160 px, few proposals, 4 classes (random heads then score
# most proposals above the 0.05 threshold, so the parity check compares real boxes, not two empty lists).
TINY_DETECTOR = ["model/backbone=resnet18", "model.min_size=160", "model.max_size=224", "model.backbone.fpn_channels=64",
                 "model.roi.representation_size=128", "model.rpn.pre_nms_top_n_test=200",
                 "model.rpn.post_nms_top_n_test=50", "model.roi.detections_per_img=30", "detector_classes=4"]


def detection(boxes: list[list[float]], labels: list[int], scores: list[float]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.tensor(scores)}


def test_parse_size() -> None:
    assert parse_size(224) == (224, 224)
    assert parse_size("800x1333") == (800, 1333)
    assert parse_size("1080p") == (1080, 1920)
    with pytest.raises(DetectError, match="not an image size"):
        parse_size("big")


def test_detector_parity_matches_by_box_and_label() -> None:
    reference = [detection([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2], [0.9, 0.5])]
    reordered = [detection([[20.4, 20, 40, 40], [0, 0, 10, 10.3]], [2, 1], [0.5002, 0.9])]
    assert detector_parity(reference, reordered).ok
    shifted = [detection([[0, 0, 10, 10], [20, 22, 40, 40]], [1, 2], [0.9, 0.5])]
    assert not detector_parity(reference, shifted).ok
    relabelled = [detection([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 3], [0.9, 0.5])]
    assert not detector_parity(reference, relabelled).ok
    rescored = [detection([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2], [0.9, 0.51])]
    assert not detector_parity(reference, rescored).ok


def test_detector_parity_tolerates_a_detection_at_the_score_cut_only() -> None:
    reference = [detection([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2], [0.9, 0.0502])]
    one_less = [detection([[0, 0, 10, 10]], [1], [0.9])]
    assert detector_parity(reference, one_less, score_thresh=0.05).ok  # 0.0502 is within 1e-3 of the threshold
    assert not detector_parity(reference, one_less, score_thresh=0.04).ok
    confident = [detection([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2], [0.9, 0.8])]
    assert not detector_parity(confident, one_less).ok
    assert not detector_parity(reference, [detection([], [], [])]).ok


def test_classifier_export_matches_pytorch_at_any_batch_and_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network, _ = build_network("classifier", compose_config("bench", ["model/backbone=resnet18"], tmp_path).model)
    path = export_onnx(network, "classifier", torch.rand(1, 3, 64, 64), tmp_path / "resnet18.onnx")
    runner = OnnxModel(path)
    for shape in [(1, 3, 64, 64), (3, 3, 96, 80)]:
        images = torch.rand(*shape)
        with torch.inference_mode():
            reference = network(images)
        logits = runner(images=images)
        assert logits[0].shape == (shape[0], 1000)
        parity = tensor_parity([reference], logits, 1e-4)
        assert parity.ok, parity.summary
    with torch.no_grad():  # the check fails on a network that differs a little
        network.fc.bias[3] += 0.01 * reference.abs().max()
        assert not tensor_parity([network(images)], logits, 1e-4).ok


def test_detector_export_matches_pytorch_and_keeps_the_classes(tmp_path: Path) -> None:
    write_images(tmp_path / "parity", ["a.png", "b.png"], size=(150, 200))
    cfg = compose_config("export", [*TINY_DETECTOR, f"path={tmp_path / 'det.onnx'}", "size=150x200",
                                    f"parity_images={tmp_path / 'parity'}"], tmp_path)
    torch.manual_seed(0)
    network, _ = build_network("detector", cfg.model, detector_classes=4)
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    checkpoint = tmp_path / "tiny.ckpt"  # the format train.py writes
    torch.save({"state_dict": state, "detect": {"class_names": ["car", "cat", "dog"], "category_ids": [3, 17, 18],
                                                "model": {}}}, checkpoint)
    cfg.weights = str(checkpoint)

    path, results = export_model(cfg)
    assert [name for name, _ in results] == ["ONNX Runtime"]
    assert all(parity.ok for _, parity in results), [parity.summary for _, parity in results]

    detector = OnnxDetector(path)
    assert detector.classes.names == ["car", "cat", "dog"] and detector.classes.category_ids == [3, 17, 18]
    images = [torch.rand(3, 120, 180), torch.rand(3, 200, 140)]  # sizes it was not traced at
    outputs = detector(images)
    with torch.inference_mode():  # one image per call, as the ONNX graph (PyTorch pads a batch to its largest image)
        reference = [network([image])[0] for image in images]
    assert sum(len(out["boxes"]) for out in reference) > 20  # a comparison of real boxes
    parity = detector_parity(reference, outputs, 1.0, 1e-3, network.roi_heads.score_thresh,
                             network.roi_heads.detections_per_img)
    assert parity.ok, parity.summary
    for image, out in zip(images, outputs):
        assert set(out) == {"boxes", "labels", "scores"}
        assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64
        assert (out["boxes"][:, 2] <= image.shape[2] + 1e-3).all() and (out["boxes"][:, 3] <= image.shape[1] + 1e-3).all()
        assert ((out["labels"] >= 1) & (out["labels"] <= 3)).all()
        assert (out["scores"] >= 0.05).all()


def test_onnx_detector_rejects_a_missing_file_and_a_classifier(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx")
    network, _ = build_network("classifier", compose_config("bench", ["model/backbone=resnet18"], tmp_path).model, classifier_classes=10)
    path = export_onnx(network, "classifier", torch.rand(1, 3, 32, 32), tmp_path / "cls.onnx", metadata={"task": "classifier"})
    with pytest.raises(DetectError, match="not a detector"):
        OnnxDetector(path)
    with pytest.raises(DetectError, match="runs on the CPU here .* not device=cuda:0; use device=cpu"):
        OnnxModel(path, "cuda:0")  # the CPU wheel: a GPU is refused before a session starts


@pytest.mark.slow  # an interpreter start, an export and two parity checks (~20 s here)
def test_export_command_writes_a_checked_model(tmp_path: Path) -> None:
    path = tmp_path / "cls.onnx"
    result = subprocess.run([sys.executable, "-m", "detect.export", "task=classifier", "model/backbone=resnet18",
                             "size=64x96", f"path={path}", f"hydra.run.dir={tmp_path / 'run'}"],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"wrote {path}" in result.stdout
    assert result.stdout.count("parity with PyTorch, ONNX Runtime at") == 2 and "FAILED" not in result.stdout
    assert OnnxModel(path)(images=torch.rand(2, 3, 40, 48))[0].shape == (2, 1000)

    for overrides, message in [(["task=segmenter"], "choose task from"),
                               (["task=classifier", "format=openvino"], "ONNX in fp32 only"),
                               (["precision=int8"], "add format=openvino")]:
        with pytest.raises(DetectError, match=message):
            export_model(compose_config("export", overrides, tmp_path))


def test_export_takes_the_checkpoints_model_config_and_checks_on_its_images(tmp_path: Path) -> None:
    """A checkpoint trained with a non-default model exports without repeating its overrides; parity that compares
    nothing (a model that detects nothing on the images) fails instead of passing."""
    model_cfg = compose_infer(["source=x"], tmp_path).model  # 32 FPN channels, 64-wide box head: not the default
    checkpoint = tmp_path / "tiny.ckpt"
    write_checkpoint(checkpoint, model_cfg, Classes(["cat", "dog"], [17, 42]))
    write_images(tmp_path / "parity", ["a.png", "b.png"], size=(96, 128))
    overrides = [f"weights={checkpoint}", f"parity_images={tmp_path / 'parity'}", "size=96x128"]
    path, results = export_model(compose_config("export", overrides, tmp_path))
    assert path == tmp_path / "tiny.onnx"
    assert results[0][1].ok, results[0][1].summary
    assert OnnxDetector(path).classes.names == ["cat", "dog"]

    with pytest.raises(DetectError, match="not inside a train.py run"):  # no images given, no run to take them from
        export_model(compose_config("export", [f"weights={checkpoint}"], tmp_path))
    blind = detector_parity([detection([], [], [])], [detection([], [], [])])
    assert not blind.ok and "nothing was compared" in blind.summary


def test_source_images_spread_over_the_frames_that_decode(tmp_path: Path) -> None:
    """A cut video whose header counts 40 frames of which 19 decode (vtest.avi: 682 and 341) still gives the count
    asked for, spread over the 19 (the header's spacing alone reached frames 0 and 10 only)."""
    clip = write_clip(tmp_path / "clip.avi", frames=40)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    frames = source_images(cut, 4)
    assert len(frames) == 4
    # the square moves 6 px a frame from x=5: frames 0, 4, 8, 12 of the 19 put it at 5, 29, 53, 77
    left_edges = [int((frame[45, :, 2] > 150).argmax()) for frame in frames]
    assert left_edges == pytest.approx([5, 29, 53, 77], abs=2)


@needs_video
def test_source_images_of_vtest_are_its_first_and_middle_frames() -> None:
    """vtest.avi: 682 frames in its header, 341 that decode; 2 frames asked are frames 0 and 170, not frame 0 alone."""
    frames = source_images(VIDEO, 2)
    capture = cv2.VideoCapture(str(VIDEO))
    expected = []
    for index in range(171):
        ok, image = capture.read()
        assert ok
        if index in (0, 170):
            expected.append(image)
    capture.release()
    assert len(frames) == 2 and all(np.array_equal(a, b) for a, b in zip(frames, expected))
