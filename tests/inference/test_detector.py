"""The Python API: Detector.load, results on paths, arrays and lists, stream() over a clip and a folder, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, TINY_CLASSES, compose_infer, write_clip, write_images

from detect import Detector, Result
from detect.export.parity import detector_parity
from detect.inference.pipeline import infer
from detect.modeling.model import build_model, read_detector_weights
from detect.tracking.trackers import Tracker
from detect.utils.errors import DetectError

CLASSES = TINY_CLASSES
SUMMARY_KEYS = {  # summary.json as infer.py wrote it before the Detector API, plus backend and vid_stride, and the
    # reconnect counts (gaps, seconds_lost, frames_lost, resized_frames)
    "source", "source_kind", "device", "backend", "model", "classes", "frame_size", "network_input_size",
    "padded_input_size", "precision", "channels_last", "compile", "vid_stride", "frames", "warmup_frames",
    "measured_frames", "corrupt_frames", "corrupt", "dropped_frames", "gaps", "seconds_lost", "frames_lost",
    "resized_frames", "stopped_by", "detections", "stages_ms",
    "warmup_model_ms", "throughput_fps", "measured_wall_s", "total_wall_s", "peak_vram_allocated_mb",
    "peak_vram_reserved_mb", "peak_rss_mb", "outputs"}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def detector(checkpoint: Path) -> Detector:
    return Detector.load(checkpoint, score_threshold=0.05, threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi", frames=10)


def _decode_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "decode" and thread.is_alive()]


def test_results_equal_torchvisions_model_on_the_same_weights(detector: Detector, checkpoint: Path,
                                                             tmp_path: Path) -> None:
    path = write_images(tmp_path, ["a.png"], size=(120, 160))[0]
    result = detector(path)
    assert isinstance(result, Result) and result.frame == 0 and result.source == "a.png"

    weights = read_detector_weights(str(checkpoint), "resnet18")
    model_cfg = weights.model_config | {"roi": {**weights.model_config["roi"], "score_thresh": 0.05}}
    reference_model = build_model(model_cfg, 3, weights).eval()  # no folded batch norms, no channels_last
    rgb = torch.from_numpy(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        reference = reference_model([rgb])[0]
    ours = {"boxes": torch.from_numpy(result.boxes), "labels": torch.from_numpy(result.labels),
            "scores": torch.from_numpy(result.scores)}
    parity = detector_parity([reference], [ours], box_px=0.05, score_tol=1e-4, score_thresh=0.05)
    assert parity.ok and len(reference["scores"]) == len(result) > 0, parity.summary

    assert result.boxes.dtype == np.float32 and result.boxes.shape == (len(result), 4)
    assert set(result.names) <= {"cat", "dog"} and set(result.category_ids) <= {17, 42}
    assert [CLASSES.category_ids[label - 1] for label in result.labels] == result.category_ids
    records = result.to_coco(image_id=7)
    assert [r["image_id"] for r in records] == [7] * len(result)
    np.testing.assert_allclose([r["bbox"][2] for r in records], result.boxes[:, 2] - result.boxes[:, 0], atol=1e-3)
    assert set(result.ms) == {"decode", "preprocess", "model", "postprocess"} and result.ms["model"] > 0

    original = result.image.copy()
    annotated = result.plot()
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)
    assert np.array_equal(result.image, original)  # plot draws on a copy


def test_arrays_and_lists_give_the_same_results_as_paths(detector: Detector, tmp_path: Path) -> None:
    paths = write_images(tmp_path, ["a.png", "b.png"], size=(100, 140))
    from_path = detector(paths[1])
    from_array = detector(cv2.imread(str(paths[1])))
    np.testing.assert_allclose(from_array.boxes, from_path.boxes, atol=1e-4)
    assert from_array.source == "array"
    results = detector([paths[0], cv2.imread(str(paths[1]))])
    assert [r.frame for r in results] == [0, 1]
    np.testing.assert_allclose(results[1].scores, from_path.scores, atol=1e-6)
    with pytest.raises(DetectError, match="missing.png does not exist"):
        detector(tmp_path / "missing.png")
    with pytest.raises(DetectError, match=r"must be uint8 BGR \(HxWx3.*got float32 \(10, 10\)"):
        detector(np.zeros((10, 10), dtype=np.float32))


def test_empty_gray_and_bgra_arrays(detector: Detector, tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=r"image array is empty \(shape \(0, 0, 3\)\)"):
        detector(np.empty((0, 0, 3), dtype=np.uint8))
    path = write_images(tmp_path, ["a.png"], size=(100, 140))[0]
    bgr = cv2.imread(str(path))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    from_file = detector(tmp_path / "gray.png")  # what imread(IMREAD_COLOR) makes of a grayscale file
    for array in (gray, gray[..., None]):
        result = detector(array)
        assert result.image.shape == (100, 140, 3)
        np.testing.assert_allclose(result.scores, from_file.scores, atol=1e-6)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 7, dtype=np.uint8)])
    np.testing.assert_allclose(detector(bgra).scores, detector(bgr).scores, atol=1e-6)  # the alpha is dropped


def test_stream_over_a_clip_and_a_folder(detector: Detector, clip: Path, tmp_path: Path) -> None:
    results = list(detector.stream(clip))
    assert [r.frame for r in results] == list(range(10)) and {r.source for r in results} == {"clip.avi"}
    assert all(r.image.shape == (96, 128, 3) and r.ms["decode"] > 0 for r in results)
    assert sum(len(r) for r in results) > 0
    write_images(tmp_path / "in", ["x.png", "y.png"])
    assert [r.source for r in detector.stream(tmp_path / "in")] == ["x.png", "y.png"]


def test_stream_of_several_sources_tags_each_result_with_its_source(detector: Detector, clip: Path,
                                                                    tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["x.png", "y.png"])
    alone = list(detector.stream(clip, vid_stride=3))
    results = list(detector.stream([clip, tmp_path / "in", clip], vid_stride=3, tracker="sort"))
    by_source = {index: [r for r in results if r.source_index == index] for index in range(3)}
    assert [r.frame for r in by_source[0]] == [r.frame for r in by_source[2]] == [0, 3, 6, 9]
    assert [r.source for r in by_source[1]] == ["x.png", "y.png"]
    for first, second, single in zip(by_source[0], by_source[2], alone):  # the same frames batched: the same boxes
        np.testing.assert_allclose(first.scores, single.scores, atol=1e-4)
        np.testing.assert_allclose(second.boxes, single.boxes, atol=1e-2)
    tracked = [r for r in by_source[0] if (r.track_ids >= 0).any()]
    assert tracked and all(len(r.track_ids) == len(r) for r in results)  # a tracker per source
    with pytest.raises(DetectError, match="one Tracker for several sources"):
        next(detector.stream([clip, clip], tracker=Tracker("sort")))


def test_vid_stride_classes_and_max_det(detector: Detector, clip: Path) -> None:
    everything = list(detector.stream(clip))
    strided = list(detector.stream(clip, vid_stride=3))
    assert [r.frame for r in strided] == [0, 3, 6, 9]
    for result in strided:  # the same frames give the same detections
        np.testing.assert_allclose(result.scores, everything[result.frame].scores, atol=1e-6)
    assert max(len(r) for r in everything) > 2
    for limited, full in zip(detector.stream(clip, max_det=2), everything):
        assert len(limited) == min(2, len(full))
        np.testing.assert_allclose(limited.scores, np.sort(full.scores)[::-1][:2], atol=1e-6)
    cats = list(detector.stream(clip, classes=["cat"]))
    dogs = list(detector.stream(clip, classes=[42]))
    assert all(set(r.names) <= {"cat"} for r in cats) and all(set(r.names) <= {"dog"} for r in dogs)
    assert [len(c) + len(d) for c, d in zip(cats, dogs)] == [len(r) for r in everything]
    with pytest.raises(DetectError, match="'horse' is not a class of this model"):
        next(detector.stream(clip, classes=["horse"]))
    with pytest.raises(DetectError, match="vid_stride=0"):
        next(detector.stream(clip, vid_stride=0))


def test_stream_closes_its_source_when_the_loop_breaks_or_raises(detector: Detector, clip: Path) -> None:
    before = len(_decode_threads())
    for result in detector.stream(clip, queue_size=2):
        assert len(_decode_threads()) == before + 1  # decoding runs on its own thread meanwhile
        break
    deadline = time.monotonic() + 5
    while len(_decode_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_decode_threads()) == before

    with pytest.raises(RuntimeError, match="consumer failed"):
        for result in detector.stream(clip, queue_size=2):
            raise RuntimeError("consumer failed")
    time.sleep(0.3)
    assert len(_decode_threads()) == before


def test_save_txt_writes_normalized_labels_matching_detections_json(clip: Path, checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    summary = infer(compose_infer([f"source={clip}", f"weights={checkpoint}", "score_threshold=0.05", "save_txt=true",
                                   "max_det=3", "vid_stride=2"], tmp_path))
    assert summary["frames"] == 5 and summary["vid_stride"] == 2 and summary["backend"] == "torch"
    assert set(summary) == SUMMARY_KEYS and json.loads((tmp_path / "summary.json").read_text()) == summary
    records = json.loads((tmp_path / "detections.json").read_text())
    assert sorted({r["frame"] for r in records}) <= [0, 2, 4, 6, 8]
    files = sorted((tmp_path / "labels").iterdir())
    assert [f.name for f in files] == sorted(f"clip_{frame}.txt" for frame in (0, 2, 4, 6, 8))
    for frame in (0, 2, 4, 6, 8):
        lines = (tmp_path / "labels" / f"clip_{frame}.txt").read_text().splitlines()
        frame_records = [r for r in records if r["frame"] == frame]
        assert len(lines) == len(frame_records) <= 3
        for line, record in zip(lines, frame_records):
            class_index, cx, cy, w, h, score = line.split()
            x, y, bw, bh = record["bbox"]
            assert CLASSES.category_ids[int(class_index)] == record["category_id"]
            assert float(cx) == pytest.approx((x + bw / 2) / 128, abs=1e-4)
            assert float(cy) == pytest.approx((y + bh / 2) / 96, abs=1e-4)
            assert float(w) == pytest.approx(bw / 128, abs=1e-4) and float(h) == pytest.approx(bh / 96, abs=1e-4)
            assert float(score) == pytest.approx(record["score"], abs=1e-4) and float(score) >= 0.05


@pytest.mark.slow  # a fresh interpreter imports torch (~10 s)
def test_readme_snippet_runs_from_another_directory(checkpoint: Path, clip: Path, tmp_path: Path) -> None:
    snippet = f"""
from detect import Detector
for weights in ({str(checkpoint)!r}, None):
    det = Detector.load(weights, backbone="resnet18", min_size=96, max_size=128, score_threshold=0.05)
    result = det({str(clip.parent / 'frame.png')!r})
    print(len(result.boxes), result.names[:1], result.category_ids[:1], result.plot().shape)
    for result in det.stream({str(clip)!r}):
        print(result.frame, len(result.boxes), round(result.ms["model"], 1) > 0)
"""
    capture = cv2.VideoCapture(str(clip))
    cv2.imwrite(str(clip.parent / "frame.png"), capture.read()[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    if "No module named 'detect'" in process.stderr:
        pytest.skip("detect is not installed in this environment (uv sync installs it)")
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    assert len(lines) == 2 * 11 and lines[0].endswith("(96, 128, 3)") and lines[11].endswith("(96, 128, 3)")
    assert "'cat'" in lines[0] or "'dog'" in lines[0]  # the checkpoint's classes
    assert [line.split()[0] for line in lines[1:11]] == [str(i) for i in range(10)]
    assert not tmp_path.is_relative_to(ROOT)
