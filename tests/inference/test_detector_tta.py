"""Test-time augmentation in the Detector and infer.py: flip mirrored back and merged, parity at the model's own
short side, a backend that cannot resize as one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BrightSquare, compose_infer, write_checkpoint, write_clip

from detect import Detector
from detect.inference.backends import Backend
from detect.inference.pipeline import infer
from detect.structures import Classes
from detect.utils.errors import DetectError

CLASSES = Classes(["square"], [1])


def square(x0: int, x1: int) -> np.ndarray:
    """A dark 96x128 BGR frame with write_clip's bright square from x0 to x1, rows 30 to 60."""
    image = np.full((96, 128, 3), 20, dtype=np.uint8)
    image[30:60, x0:x1] = (40, 200, 240)
    return image


class Recorded(BrightSquare):
    """BrightSquare that keeps the images it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[torch.Tensor] = []

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.images += images
        return super().__call__(images)


@pytest.mark.parametrize(("x0", "x1"), [(49, 79), (10, 40)])  # symmetric about the middle, and not
def test_flip_returns_the_mirror_mapped_back_and_merged_into_the_same_set(x0: int, x1: int) -> None:
    backend = Recorded()
    result = Detector(Backend(backend, CLASSES, "square"), tta={"flip": True})(square(x0, x1))
    assert result.boxes.tolist() == [[x0, 30, x1, 60]] and result.scores.tolist() == pytest.approx([0.9])
    assert backend.calls == [2] and torch.equal(backend.images[1], backend.images[0].flip(-1))  # in one call


def test_the_models_own_short_side_returns_exactly_the_plain_detections(tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny.ckpt"
    write_checkpoint(checkpoint, compose_infer(["source=x"], tmp_path).model, Classes(["cat", "dog"], [17, 42]))
    plain = Detector.load(checkpoint, score_threshold=0.05, threads=1)
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    expected, own_size = plain(image), plain.backend.input_size(96, 128)
    own = Detector(plain.backend, score_threshold=0.05, tta={"sizes": [128]})(image)  # TINY_INFER's min_size
    assert len(expected) > 0
    np.testing.assert_array_equal(own.boxes, expected.boxes)
    np.testing.assert_array_equal(own.scores, expected.scores)
    Detector(plain.backend, score_threshold=0.05, tta={"flip": True, "sizes": [64, 160]})(image)
    assert plain.backend.input_size(96, 128) == own_size  # the resize is the model's own again


def test_infer_with_tta_and_slicing_runs(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=3)
    cfg = compose_infer([f"source={clip}", "tta.flip=true", "tta.sizes=[96,128]", "slice.size=[64,64]"],
                        tmp_path / "out")
    summary = infer(cfg)
    assert summary["frames"] == 3 and summary["tta"] == {"flip": True, "sizes": [96, 128], "iou": 0.5}


def test_sizes_on_a_backend_that_cannot_resize_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=r"^tta.sizes=\[640\] needs backend=torch: an exported graph resizes"):
        Detector(Backend(BrightSquare(), CLASSES, "square"), tta={"sizes": [640]})
    cfg = compose_infer(["source=missing.avi", "backend=onnxruntime", "tta.sizes=[640]"], tmp_path)
    with pytest.raises(DetectError, match=r"^tta.sizes=\[640\] needs backend=torch"):
        infer(cfg)
