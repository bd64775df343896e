"""Sliced inference and test-time augmentation in the Detector and infer.py: parity with the plain run, a cut object
merged, one backend call for the slices, the slice stage in frames.csv, the mirror mapped back and merged, bad
settings as one line."""

from __future__ import annotations

import csv
import json
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


def square_image(x0: int, x1: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A dark BGR frame with a bright square (write_clip's colour) from x0 to x1, rows 30 to 60."""
    image = np.full((*size, 3), 20, dtype=np.uint8)
    image[30:60, x0:x1] = (40, 200, 240)
    return image


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    """The tiny inference model with random weights (classes cat and dog), detections from score 0.05."""
    checkpoint = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    write_checkpoint(checkpoint, compose_infer(["source=x"], checkpoint.parent).model,
                     Classes(["cat", "dog"], [17, 42]))
    return Detector.load(checkpoint, score_threshold=0.05, threads=1)


def test_one_slice_covering_the_frame_returns_exactly_the_plain_detections(plain: Detector) -> None:
    sliced = Detector(plain.backend, score_threshold=0.05, slicing={"size": [96, 128], "full_frame": False})
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    expected, result = plain(image), sliced(image)
    assert len(expected) > 0
    np.testing.assert_array_equal(result.boxes, expected.boxes)
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert result.ms["slice"] > 0 and "slice" not in expected.ms


@pytest.mark.parametrize(("how", "boxes"), [("nmm", [[50, 30, 80, 60]]),
                                            ("nms", [[50, 30, 64, 60], [51, 30, 80, 60]])])
def test_an_object_cut_by_a_slice_border_is_one_box_with_nmm(how: str, boxes: list) -> None:
    backend = BrightSquare()
    detector = Detector(Backend(backend, CLASSES, "bright square"),
                        slicing={"size": [64, 64], "full_frame": False, "merge": how})
    result = detector(square_image(50, 80))  # x slices 0-64, 51-115, 64-128: the square is cut at 64
    assert result.boxes.tolist() == boxes
    assert backend.calls == [6]  # the 2x3 slices of the frame in one call


def test_the_frames_of_several_sources_are_sliced_in_one_call(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{name}.avi", frames=2) for name in ("a", "b")]
    backend = BrightSquare()
    detector = Detector(Backend(backend, CLASSES, "bright square"), slicing={"size": [64, 64], "merge": "nmm"})
    results = list(detector.stream(clips))
    slices, whole = backend.calls[::2], backend.calls[1::2]  # per batch of frames: their slices, then the frames
    assert sum(whole) == 4 and slices == [6 * frames for frames in whole]
    assert [len(result) for result in results] == [1] * 4


def test_infer_with_slicing_tracks_counts_and_times_the_slice_stage(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=14)
    middle = "+zones={lines: {middle: {start: [64, 0], end: [64, 96]}}}"
    cfg = compose_infer([f"source={clip}", "slice.size=[64,64]", "slice.merge=nmm", "tracker=bytetrack",
                         middle], tmp_path / "out")
    summary = infer(cfg, Detector(Backend(BrightSquare(), CLASSES, "bright square"), slicing=cfg.slice))
    assert summary["zones"]["lines"]["middle"]["in"] == 1
    assert summary["slice"]["size"] == [64, 64] and summary["stages_ms"]["slice"]["n"] == 13
    with open(tmp_path / "out" / "frames.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 14 and all(float(row["slice_ms"]) > 0 for row in rows)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["slice"]["merge"] == "nmm"


@pytest.mark.parametrize(("overrides", "message"), [
    (["slice.size=[0,64]"], r"^slice.size=\[0, 64\] must be a slice height and width in pixels, both >= 1"),
    (["slice.size=[64,64]", "slice.overlap=1.5"], r"^slice.overlap=1.5 must be in \[0, 1\)"),
    (["slice.size=[64,64]", "batch=false"], "^slice.size is set with batch=false: the slices of a frame go"),
])
def test_bad_slice_settings_of_infer_are_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(DetectError, match=message):
        infer(compose_infer(["source=missing.avi", *overrides], tmp_path / "out"))


def test_unknown_slice_keys_of_the_api_are_one_line() -> None:
    with pytest.raises(DetectError, match=r"^slice=\{'step': 3\} does not fit infer.yaml's slice block \(Key 'step' "
                                          r"is not in struct\); its keys are size, overlap, full_frame, merge, iou$"):
        Detector(Backend(BrightSquare(), CLASSES, "bright square"), slicing={"step": 3})


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
    result = Detector(Backend(backend, CLASSES, "square"), tta={"flip": True})(square_image(x0, x1))
    assert result.boxes.tolist() == [[x0, 30, x1, 60]] and result.scores.tolist() == pytest.approx([0.9])
    assert backend.calls == [2] and torch.equal(backend.images[1], backend.images[0].flip(-1))  # in one call


def test_the_models_own_short_side_returns_exactly_the_plain_detections(plain: Detector) -> None:
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
    assert summary["stages_ms"]["slice"]["mean"] > 0


def test_sizes_on_a_backend_that_cannot_resize_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=r"^tta.sizes=\[640\] needs backend=torch: an exported graph resizes"):
        Detector(Backend(BrightSquare(), CLASSES, "square"), tta={"sizes": [640]})
    cfg = compose_infer(["source=missing.avi", "backend=onnxruntime", "tta.sizes=[640]"], tmp_path)
    with pytest.raises(DetectError, match=r"^tta.sizes=\[640\] needs backend=torch"):
        infer(cfg)
