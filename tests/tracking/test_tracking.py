"""Tracking: stable ids on hand-made detections and on a generated clip's ground truth, the MOT outputs of infer.py,
and the evaluator on cases with known HOTA / MOTA / IDF1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_infer, write_clip

from detect.config import check_group_overrides
from detect.data.synthetic_video import write_tracking_video
from detect.evaluation.mot import evaluate_tracking
from detect.inference import Detector, Result
from detect.inference.backends import Backend
from detect.inference.pipeline import infer
from detect.inference.sinks import MotTracks
from detect.structures import Classes
from detect.tracking.trackers import TRACKER_CLASSES, Tracker
from detect.utils.errors import DetectError

CLASSES = Classes(["square"], [1])
IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)


def result_of(frame: int, boxes: list[list[float]], scores: list[float] | None = None) -> Result:
    scores = scores or [0.9] * len(boxes)
    return Result(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(scores, dtype=np.float32),
                  np.ones(len(boxes), dtype=np.int64), CLASSES, IMAGE, frame=frame)


@pytest.mark.parametrize("name", sorted(TRACKER_CLASSES))
def test_a_shape_moving_in_a_straight_line_keeps_its_id(name: str) -> None:
    tracker = Tracker(name, frame_rate=25)
    ids = [tracker.update(result_of(f, [[10 + 3 * f, 40, 40 + 3 * f, 70]])).track_ids[0] for f in range(20)]
    confirmed = [i for i in ids if i >= 0]
    assert len(confirmed) >= 16 and len(set(confirmed)) == 1 and confirmed[0] >= 1  # ids count from 1
    assert ids[-5:] == [confirmed[0]] * 5


@pytest.mark.parametrize("name", ["bytetrack", "sort"])
def test_two_crossing_shapes_keep_their_ids(name: str) -> None:
    tracker = Tracker(name, frame_rate=25)
    per_frame = []
    for f in range(30):  # A moves right, B moves left, 10 px apart vertically: they overlap around frame 15
        a, b = [5 + 4 * f, 40, 35 + 4 * f, 70], [125 - 4 * f, 50, 155 - 4 * f, 80]
        order = [a, b] if f % 2 else [b, a]  # the detector's order changes from frame to frame
        ids = tracker.update(result_of(f, order)).track_ids
        per_frame.append((ids[0], ids[1]) if f % 2 else (ids[1], ids[0]))
    late = per_frame[5:]
    assert len({a for a, _ in late}) == 1 and len({b for _, b in late}) == 1 and late[0][0] != late[0][1]


def test_unknown_tracker_is_one_line_listing_the_trackers(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match="^tracker='nonsense' is not allowed; choose one of botsort, bytetrack, "
                                          "ocsort, sort$"):
        check_group_overrides(["source=x", "tracker=nonsense"])
    check_group_overrides(["tracker=bytetrack", "model/backbone=resnet18,resnet50", "hydra.run.dir=x"])
    with pytest.raises(DetectError, match="tracker='nonsense'"):
        Tracker("nonsense")
    with pytest.raises(DetectError, match="track_gt=.* needs a tracker"):
        infer(compose_infer(["source=x", f"track_gt={tmp_path}"], tmp_path))


def write_mot(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def test_evaluator_on_known_cases(tmp_path: Path) -> None:
    gt = write_mot(tmp_path / "gt.txt", [(f, 1, 10 + f, 20, 30, 30, 1, 1, 1.0) for f in range(1, 11)]
                   + [(f, 2, 100, 60, 20, 20, 1, 1, 1.0) for f in range(1, 11)])
    perfect = write_mot(tmp_path / "perfect.txt", [(f, 7, 10 + f, 20, 30, 30, 0.9, -1, -1, -1) for f in range(1, 11)]
                        + [(f, 3, 100, 60, 20, 20, 0.9, -1, -1, -1) for f in range(1, 11)])
    metrics = evaluate_tracking(gt, perfect, tmp_path)
    assert metrics["HOTA"] == pytest.approx(1.0) and metrics["MOTA"] == pytest.approx(1.0)
    assert metrics["IDF1"] == pytest.approx(1.0) and metrics["IDSW"] == 0
    assert json.loads((tmp_path / "tracking_metrics.json").read_text())["HOTA"] == pytest.approx(1.0)
    # a run that processed 10 frames but whose tracks stop after frame 5 is scored on all 10: half the gt missed
    early = write_mot(tmp_path / "early.txt", [(f, 7, 10 + f, 20, 30, 30, 0.9, -1, -1, -1) for f in range(1, 6)]
                      + [(f, 3, 100, 60, 20, 20, 0.9, -1, -1, -1) for f in range(1, 6)])
    metrics = evaluate_tracking(gt, early, last_frame=10)
    assert metrics["frames_evaluated"] == 10 and metrics["MOTA"] == pytest.approx(0.5)
    metrics = evaluate_tracking(gt, early, last_frame=5)  # a run stopped after frame 5
    assert metrics["frames_evaluated"] == 5 and metrics["MOTA"] == pytest.approx(1.0)

    # object 1's track changes id after frame 5: one ID switch. IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) with the
    # best one-to-one id mapping: object 2 gives 10 IDTP; object 1 maps to one of its two ids for 5 frames, so
    # IDTP = 15, IDFN = 5 (its other 5 frames), IDFP = 5 (the other id's 5 boxes) -> 30 / 40 = 0.75.
    # MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 1 / 20.
    switched = write_mot(tmp_path / "switched.txt",
                         [(f, 7 if f <= 5 else 8, 10 + f, 20, 30, 30, 0.9, -1, -1, -1) for f in range(1, 11)]
                         + [(f, 3, 100, 60, 20, 20, 0.9, -1, -1, -1) for f in range(1, 11)])
    metrics = evaluate_tracking(gt, switched)
    assert metrics["IDSW"] == 1 and metrics["IDF1"] == pytest.approx(0.75)
    assert metrics["MOTA"] == pytest.approx(1 - 1 / 20) and metrics["HOTA"] < 1.0


def test_ground_truth_of_a_generated_clip_is_tracked_with_few_switches(tmp_path: Path) -> None:
    """A perfect detector (the clip's own visible gt boxes) through ByteTrack: the clip's crossings cost few ids."""
    paths = write_tracking_video(tmp_path, seed=3, frames=80, objects=6)
    rows = [line.split(",") for line in paths["gt"].read_text().splitlines()]
    tracker, tracks = Tracker("bytetrack", frame_rate=25), MotTracks(tmp_path / "tracks.txt")
    for frame in range(80):
        boxes = [[float(r[2]), float(r[3]), float(r[2]) + float(r[4]), float(r[3]) + float(r[5])]
                 for r in rows if int(r[0]) == frame + 1 and r[6] == "1"]
        tracks.write(tracker.update(result_of(frame, boxes)))
    tracks.close()
    metrics = evaluate_tracking(paths["gt"], tmp_path / "tracks.txt")
    assert metrics["MOTA"] > 0.8 and metrics["IDF1"] > 0.8 and metrics["IDSW"] <= 2, metrics


class MovingBoxes:
    """A backend whose one box moves 4 px right each call (a perfect detector of write_clip's square)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        x = 5.0 + 6 * self.calls
        self.calls += 1
        return [{"boxes": torch.tensor([[x, 30.0, x + 30, 60.0]]), "labels": torch.tensor([1]),
                 "scores": torch.tensor([0.95])}]


def test_infer_writes_track_ids_mot_tracks_and_the_tracker_stage(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=10)
    detector = Detector(Backend(MovingBoxes(), CLASSES, "moving boxes"), score_threshold=0.5)
    summary = infer(compose_infer([f"source={clip}", "tracker=bytetrack"], tmp_path / "out"), detector)
    out = tmp_path / "out"

    lines = (out / "tracks.txt").read_text().splitlines()
    assert len(lines) >= 8 and summary["tracks"] == 1 and summary["tracker"] == "bytetrack"
    for line in lines:
        frame, track_id, x, y, w, h, score, *rest = line.split(",")
        assert rest == ["-1", "-1", "-1"] and track_id == "1" and 1 <= int(frame) <= 10
        assert float(x) == pytest.approx(5 + 6 * (int(frame) - 1), abs=0.01) and float(w) == pytest.approx(30)
        assert float(score) == pytest.approx(0.95)
    records = json.loads((out / "detections.json").read_text())
    assert len(records) == 10 and {r["track_id"] for r in records} <= {-1, 1} and records[-1]["track_id"] == 1
    header = (out / "frames.csv").read_text().splitlines()[0].split(",")
    assert header.index("track_ms") == header.index("postprocess_ms") + 1
    assert summary["stages_ms"]["track"]["n"] == summary["measured_frames"] > 0
