"""infer's pipeline on images, folders, globs and a slice of vtest.avi with a tiny model: outputs, schemas, timings."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import VIDEO, compose_infer, needs_video, write_checkpoint, write_images
from torchvision.ops.misc import FrozenBatchNorm2d

from detect.inference import Detector
from detect.inference.backends import Backend, fold_batchnorm
from detect.inference.pipeline import infer
from detect.inference.sinks import csv_columns, timed_stages
from detect.inference.summary import format_summary
from detect.modeling.model import build_backbone, build_model
from detect.structures import Classes
from detect.utils.errors import DetectError
from detect.utils.timing import summarize


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_folder_of_images_skips_a_corrupt_one_and_keeps_the_names(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.jpg", "c.png"])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    summary = infer(compose_infer([f"source={tmp_path / 'in'}", "score_threshold=0.0"], tmp_path / "out"))

    assert summary["frames"] == 3 and summary["corrupt_frames"] == 1 and summary["corrupt"] == ["broken.jpg#2"]
    assert summary["warmup_frames"] == 1 and summary["measured_frames"] == 2
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["a.png", "b.jpg", "c.png"]
    annotated = cv2.imread(str(tmp_path / "out" / "images" / "a.png"))
    original = cv2.imread(str(tmp_path / "in" / "a.png"))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)  # boxes drawn
    rows = read_csv(tmp_path / "out" / "frames.csv")
    assert [(row["frame"], row["source"]) for row in rows] == [("0", "a.png"), ("1", "b.jpg"), ("3", "c.png")]
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {r["source"] for r in records} == {"a.png", "b.jpg", "c.png"}  # random weights score above 0.0
    assert summary["frame_size"] == [96, 128] and summary["network_input_size"] == [128, 170]


def test_glob_and_single_image(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["x1.png", "x2.png", "y.jpg"])
    summary = infer(compose_infer([f"source={tmp_path / 'in'}/x*.png", "save=false"], tmp_path / "glob"))
    assert summary["frames"] == 2 and summary["outputs"]["media"] is None
    assert not (tmp_path / "glob" / "images").exists()
    summary = infer(compose_infer([f"source={tmp_path / 'in' / 'y.jpg'}"], tmp_path / "one"))
    assert summary["frames"] == 1 and (tmp_path / "one" / "images" / "y.jpg").is_file()
    assert summary["measured_frames"] == 0 and summary["throughput_fps"] is None  # only the warm-up frame
    assert "no frame after warm-up" in format_summary(summary)


def test_recursive_glob_names_outputs_by_their_path_below_the_glob_root(tmp_path: Path) -> None:
    write_images(tmp_path / "in" / "x", ["a.jpg"], size=(64, 96))
    write_images(tmp_path / "in" / "y" / "z", ["a.jpg"], size=(80, 96))  # the same name, another size
    summary = infer(compose_infer([f"source={tmp_path / 'in'}/**/*.jpg", "save_txt=true", "score_threshold=0.0"],
                                  tmp_path / "out"))
    assert summary["frames"] == 2
    assert cv2.imread(str(tmp_path / "out" / "images" / "x" / "a.jpg")).shape == (64, 96, 3)
    assert cv2.imread(str(tmp_path / "out" / "images" / "y" / "z" / "a.jpg")).shape == (80, 96, 3)
    assert (tmp_path / "out" / "labels" / "x" / "a.txt").is_file()
    assert (tmp_path / "out" / "labels" / "y" / "z" / "a.txt").is_file()
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {r["source"] for r in records} == {"x/a.jpg", "y/z/a.jpg"}


@needs_video
def test_video_slice_writes_a_playable_video_and_the_schemas(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = compose_infer([f"source={VIDEO}", "max_frames=4", "score_threshold=0.0", "verbose=true"], tmp_path)
    summary = infer(cfg)

    capture = cv2.VideoCapture(str(tmp_path / "vtest.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(50.0)
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    assert len(frames) == 4 and frames[0].shape == (720, 1280, 3)

    assert summary["stopped_by"] == "max_frames" and summary["frames"] == 4 and summary["measured_frames"] == 3
    # 720x1280 -> short side 128 would make the long side 228 > 192: scale 0.15, then padded to multiples of 32.
    assert summary["network_input_size"] == [108, 192] and summary["padded_input_size"] == [128, 192]
    assert set(summary["stages_ms"]) == set(timed_stages()) and summary["peak_rss_mb"] > 0
    assert summary["peak_vram_allocated_mb"] is None  # CPU

    rows = read_csv(tmp_path / "frames.csv")
    assert list(rows[0]) == list(csv_columns(timed_stages()))
    assert [row["warmup"] for row in rows] == ["1", "0", "0", "0"] and [row["frame"] for row in rows] == list("0123")
    for stage in timed_stages():  # the summary's statistics are those of the csv's frames after warm-up
        measured = [float(row[f"{stage}_ms"]) for row in rows if row["warmup"] == "0"]
        assert summary["stages_ms"][stage]["p50"] == pytest.approx(summarize(measured)["p50"], abs=1e-3)
        assert summary["stages_ms"][stage]["max"] == pytest.approx(max(measured), abs=1e-3)
    for row in rows:
        parts = sum(float(row[f"{s}_ms"]) for s in ("decode", "preprocess", "model", "postprocess", "draw_write"))
        assert float(row["end_to_end_ms"]) >= parts - 0.01

    records = json.loads((tmp_path / "detections.json").read_text())
    assert len(records) == summary["detections"] == sum(int(row["detections"]) for row in rows) > 0
    for record in records:
        assert set(record) == {"image_id", "category_id", "bbox", "score", "frame", "source"}
        assert record["source"] == "vtest.avi" and record["image_id"] == record["frame"] in range(4)
        x, y, w, h = record["bbox"]
        assert w >= 0 and h >= 0 and -1 <= x and x + w <= 1281 and y + h <= 721 and 0 <= record["score"] <= 1
        assert 1 <= record["category_id"] <= 90
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frame ")]
    assert len(lines) == 4 and lines[0].startswith("frame 1/4 vtest.avi: ") and lines[0].endswith("ms")


def test_checkpoint_carries_class_names_and_original_category_ids(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png"])
    ckpt = tmp_path / "best.ckpt"
    write_checkpoint(ckpt, compose_infer(["source=x"], tmp_path).model, Classes(["cat", "dog"], [17, 42]))
    summary = infer(compose_infer([f"source={tmp_path / 'in'}", f"weights={ckpt}", "score_threshold=0.05",
                                   "verbose=true"], tmp_path / "out"))
    assert summary["classes"] == ["cat", "dog"]
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert records and {r["category_id"] for r in records} <= {17, 42}
    assert min(r["score"] for r in records) >= 0.05
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frame ")]
    assert any(" cat" in line or " dog" in line for line in lines)


class SleepyDetector:
    """A backend with known timings: the first call takes 300 ms (a warm-up), every later one 40 ms."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        time.sleep(0.3 if self.calls == 0 else 0.04)
        self.calls += 1
        assert images[0].dtype == torch.float32 and images[0].shape[0] == 3 and 0 <= images[0].min() <= 1
        return [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0], [1.0, 1.0, 2.0, 2.0]]),
                 "labels": torch.tensor([1, 1]), "scores": torch.tensor([0.9, 0.1])}]


def test_statistics_leave_out_warmup_and_follow_known_timings(tmp_path: Path) -> None:
    write_images(tmp_path / "in", [f"{i}.png" for i in range(5)])
    detector = Detector(Backend(SleepyDetector(), Classes(["thing"], [7]), "sleepy"), score_threshold=0.5)
    summary = infer(compose_infer([f"source={tmp_path / 'in'}", "score_threshold=0.5"], tmp_path / "out"), detector)

    model_ms = summary["stages_ms"]["model"]
    assert model_ms["n"] == 4 and 40 <= model_ms["p50"] and model_ms["max"] < 300
    assert summary["warmup_model_ms"][0] >= 300 and summary["network_input_size"] is None
    assert summary["throughput_fps"] < 1000 / 40 and summary["measured_wall_s"] >= 4 * 0.04
    rows = read_csv(tmp_path / "out" / "frames.csv")
    assert float(rows[0]["model_ms"]) >= 300 and rows[0]["warmup"] == "1"
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert len(records) == 5  # the 0.1 box is under score_threshold
    assert records[0]["category_id"] == 7 and records[0]["bbox"] == [10.0, 20.0, 20.0, 40.0]


def test_unreadable_sources_fail_with_one_clear_message(tmp_path: Path) -> None:
    (tmp_path / "fake.avi").write_text("not a video")
    (tmp_path / "empty").mkdir()
    cases = {str(tmp_path / "missing.mp4"): "does not exist", str(tmp_path / "fake.avi"): "could not be opened",
             str(tmp_path / "empty"): "holds no images", f"{tmp_path}/*.png": "no images match",
             "7": "webcam 7 could not be opened"}
    for source, message in cases.items():
        with pytest.raises(DetectError, match=message):
            infer(compose_infer([f"source={source}"], tmp_path / "out"))
    with pytest.MonkeyPatch.context() as patch:  # OpenCV's GUI build would abort the process without a display
        patch.delenv("DISPLAY", raising=False)
        patch.delenv("WAYLAND_DISPLAY", raising=False)
        with pytest.raises(DetectError, match="show=true needs a display"):
            infer(compose_infer([f"source={tmp_path}", "show=true"], tmp_path / "out"))
    with pytest.raises(DetectError, match="source must be set"):
        infer(compose_infer([], tmp_path / "out"))
    with pytest.raises(DetectError, match="precision='fp8'"):
        infer(compose_infer([f"source={tmp_path}", "precision=fp8"], tmp_path / "out"))


def test_fold_batchnorm_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    config = {"name": "resnet18", "norm": "frozen_bn", "trainable_layers": 3, "fpn_channels": 32}
    backbone = build_backbone(config).eval()
    for module in backbone.modules():  # non-trivial statistics, so that folding has something to fold
        if isinstance(module, FrozenBatchNorm2d):
            for name in ("weight", "bias", "running_mean"):
                getattr(module, name).normal_(0.0 if name != "weight" else 1.0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    images = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        reference = backbone(images)
        fold_batchnorm(backbone.body)
        folded = backbone(images)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())
    for name in reference:
        scale = reference[name].abs().max()
        assert (folded[name] - reference[name]).abs().max() <= 1e-5 * scale


def test_onnx_model_runs_the_same_pipeline(tmp_path: Path) -> None:
    from detect.export.onnx_export import export_onnx

    cfg = compose_infer(["source=x", "score_threshold=0.05"], tmp_path)
    torch.manual_seed(0)
    network = build_model(cfg.model, num_classes=3).eval()
    path = export_onnx(network, "detector", torch.rand(3, 96, 128), tmp_path / "tiny.onnx",
                       metadata={"task": "detector", "class_names": json.dumps(["cat", "dog"]),
                                 "category_ids": json.dumps([17, 42])})
    write_images(tmp_path / "in", ["a.png", "b.png"])
    summary = infer(compose_infer([f"source={tmp_path / 'in'}", f"weights={path}", "score_threshold=0.05"],
                                  tmp_path / "out"))
    assert "ONNX Runtime" in summary["model"] and summary["classes"] == ["cat", "dog"]
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert records and {r["category_id"] for r in records} <= {17, 42}
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["a.png", "b.png"]
