"""OpenCV DNN on an exported graph: PyTorch's outputs, and one readable line for a file it cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from detect.export.onnx_export import export_onnx
from detect.export.opencv_runtime import OpenCvModel
from detect.utils.errors import DetectError


def test_opencv_runs_an_exported_classifier_like_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = torchvision.models.resnet18(num_classes=10).eval()
    path = export_onnx(network, "classifier", torch.rand(1, 3, 32, 32), tmp_path / "classifier.onnx")
    images = torch.rand(2, 3, 48, 40)  # another batch and size than traced: the graph's axes are dynamic
    (logits,) = OpenCvModel(path)(images=images)
    with torch.inference_mode():
        torch.testing.assert_close(logits, network(images), rtol=1e-4, atol=1e-4)


def test_a_file_opencv_cannot_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(DetectError, match=r"^OpenCV .* DNN cannot read broken.onnx: ") as raised:
        OpenCvModel(tmp_path / "broken.onnx")
    assert "\n" not in str(raised.value)
    with pytest.raises(DetectError, match="does not exist"):
        OpenCvModel(tmp_path / "missing.onnx")
