"""Counting zones: line crossings in / out and polygon entries, exits and time inside on hand-made tracks, the
Python stream, bad zones as one line, and infer.py on the synthetic clip against its true crossings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BrightSquare, compose_infer, write_clip
from test_tracking import MovingBoxes  # the same square, from the number of calls

from detect.data.synthetic_video import write_tracking_video
from detect.inference import Detector, Result
from detect.inference.backends import Backend
from detect.inference.pipeline import infer
from detect.structures import Classes
from detect.tracking.counting import ZoneCounter, format_counts
from detect.tracking.zones import load_zones
from detect.utils.errors import DetectError

CLASSES = Classes(["square", "disc"], [1, 2])
IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)
ZONES = {"lines": {"door": {"start": [80, 0], "end": [80, 120]}},
         "polygons": {"box": {"points": [[100, 0], [160, 0], [160, 120], [100, 120]], "anchor": "center"}},
         "exit_after_s": 0.2}


def tracked(frame: int, boxes: list[list[float]], ids: list[int], labels: list[int] | None = None) -> Result:
    return Result(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, dtype=np.float32),
                  np.array(labels or [1] * len(boxes), dtype=np.int64), CLASSES, IMAGE, frame,
                  track_ids=np.array(ids, dtype=np.int64))


def test_crossings_in_and_out_entries_exits_and_time_inside() -> None:
    counter = ZoneCounter(ZONES, fps=10.0)
    events = []
    for f in range(30):  # track 1 (a square) moves right 4 px a frame from x=20: crosses x=80 and enters the box
        boxes, ids, labels = [[20 + 4 * f, 40, 40 + 4 * f, 60]], [1], [1]
        if f < 25:  # track 2 (a disc) moves left from x=110 and is lost at frame 25; track 3 stays unconfirmed
            boxes += [[110 - 3 * f, 70, 130 - 3 * f, 90], [85, 5, 95, 15]]
            ids += [2, -1]
            labels += [2, 2]
        events += counter.update(tracked(f, boxes, ids, labels)).events
    got = [(e["frame"], e["track_id"], e["class"], e["zone"], e["direction"]) for e in events]
    # track 2 starts in the box (centre x = 120 - 3f >= 100) and leaves it at frame 7; its centre is left of x=80
    # from frame 14 (78): "out"; track 1's centre (30 + 4f) is right of the line from frame 13 (82): "in" (onto the
    # left of start -> end, which points down), and inside the box from frame 18
    assert got == [(0, 2, "disc", "box", "enter"), (7, 2, "disc", "box", "exit"), (13, 1, "square", "door", "in"),
                   (14, 2, "disc", "door", "out"), (18, 1, "square", "box", "enter")]
    assert events[1]["seconds_inside"] == pytest.approx(0.7) and events[1]["time"] == pytest.approx(0.7)
    summary = counter.summary()
    assert summary["lines"]["door"] == {"in": 1, "out": 1, "in_per_class": {"square": 1}, "out_per_class": {"disc": 1}}
    box = summary["polygons"]["box"]
    assert (box["entries"], box["exits"], box["inside_at_end"], box["max_occupancy"]) == (2, 1, 1, 1)
    # a track inside that is no longer seen leaves after exit_after_s (2 frames at 10 FPS), dated at its last frame
    last = counter.update(tracked(60, [], [])).events
    assert [(e["frame"], e["track_id"], e["direction"]) for e in last] == [(29, 1, "exit")]
    assert last[0]["seconds_inside"] == pytest.approx(1.1)


def test_stream_puts_counts_and_events_on_each_result(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=14)  # 96x128: the square crosses x=64 to the right
    detector = Detector(Backend(MovingBoxes(), CLASSES, "moving boxes"))
    zones = {"lines": {"middle": {"start": [64, 0], "end": [64, 96]}}}
    results = list(detector.stream(clip, tracker="bytetrack", zones=zones))
    assert [r.counts["lines"]["middle"]["in"] for r in results] == [0] * 8 + [1] * 6  # centre 20 + 6f > 64 at 8
    assert [(r.frame, e["direction"], e["source"]) for r in results for e in r.events] == [(8, "in", "clip.avi")]
    with pytest.raises(DetectError, match="^zones count tracks: add a tracker"):
        next(detector.stream(clip, zones=zones))


def test_each_source_of_a_run_has_its_own_counter_and_events(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{name}.avi", frames=frames) for name, frames in (("a", 12), ("b", 14))]
    detector = Detector(Backend(BrightSquare(), CLASSES, "bright square"))
    middle = "+zones={lines: {middle: {start: [64, 0], end: [64, 96]}}}"
    summary = infer(compose_infer([f"source=[{clips[0]},{clips[1]}]", "tracker=bytetrack", middle], tmp_path / "out"),
                    detector)
    assert [row["zones"]["lines"]["middle"]["in"] for row in summary["sources"]] == [1, 1]  # not 2: one counter each
    for name in ("a", "b"):
        events = [json.loads(line) for line in (tmp_path / "out" / name / "events.jsonl").read_text().splitlines()]
        assert [(e["source"], e["frame"], e["direction"]) for e in events] == [(f"{name}.avi", 8, "in")]


@pytest.mark.parametrize(("zones", "message"), [
    ({"lines": {"door": {"start": [10, 10], "end": [10, 10]}}}, "^line 'door' has zero length"),
    ({"polygons": {"area": {"points": [[0, 0], [10, 0]]}}}, "^polygon 'area' has 2 distinct points"),
    ({"lines": {"door": {"start": [0, 0]}}}, "^line 'door' needs start and end"),
    ({"lines": {"door": {"start": [0, 0], "end": [1, 1]}}, "colour": 1}, r"^zones: unknown keys \['colour'\]"),
    ("nonsense", "^zones='nonsense' is not in configs/zones"),
])
def test_bad_zones_are_one_line_naming_the_zone(zones: object, message: str) -> None:
    with pytest.raises(DetectError, match=message):
        load_zones(zones)


def test_zone_outside_the_frame_and_zones_without_tracker_are_one_line(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=3)
    detector = Detector(Backend(MovingBoxes(), CLASSES, "moving boxes"))
    far = "+zones={lines: {far: {start: [0, 50], end: [500, 50]}}}"  # inline zones: Hydra's + adds the group's node
    cfg = compose_infer([f"source={clip}", "tracker=bytetrack", far], tmp_path / "out")
    with pytest.raises(DetectError, match=r"^zone 'far': point \[500, 50\] is outside the 128x96 frame of clip.avi"):
        infer(cfg, detector)
    with pytest.raises(DetectError, match="^zones count tracks: add a tracker"):
        infer(compose_infer([f"source={clip}", "zones=synthetic"], tmp_path / "out2"), detector)


class GroundTruthBoxes:
    """A backend that returns the clip's true boxes of each frame in turn (every shape in the frame, occluded ones
    too): a perfect detector, so that only the tracker can make the counts differ from the true ones."""

    def __init__(self, gt: Path) -> None:
        self.rows = np.loadtxt(gt, delimiter=",", ndmin=2)
        self.calls = 0

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls += 1
        rows = self.rows[self.rows[:, 0] == self.calls]
        boxes = torch.tensor(rows[:, 2:6], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        return [{"boxes": boxes, "labels": torch.ones(len(rows), dtype=torch.int64),
                 "scores": torch.full((len(rows),), 0.9)}]


def test_infer_counts_the_synthetic_clip_like_its_true_crossings(tmp_path: Path) -> None:
    paths = write_tracking_video(tmp_path, seed=3, frames=120, objects=6)
    truth = json.loads(paths["counts"].read_text())
    assert sum(line["in"] + line["out"] for line in truth["lines"].values()) > 0  # the clip has crossings
    detector = Detector(Backend(GroundTruthBoxes(paths["gt"]), CLASSES, "ground truth"))
    out = tmp_path / "out"
    summary = infer(compose_infer([f"source={paths['video']}", "tracker=bytetrack", "zones=synthetic",
                                   f"track_gt={paths['gt']}"], out), detector)

    errors, switches = summary["counting_error"], summary["tracking_metrics"]["IDSW"]
    for name in ("vertical", "horizontal"):
        true = truth["lines"][name]
        assert (errors[name]["true_in"], errors[name]["true_out"]) == (true["in"], true["out"])
        assert ((errors[name]["optional_in"], errors[name]["optional_out"])
                == (true["in_optional"], true["out_optional"]))
        assert errors[name]["abs_error"] <= switches, (errors, switches)
    vertical = errors["vertical"]
    assert vertical["optional_in"] + vertical["optional_out"] > 0  # the clip has a shape's part crossing at the border
    assert (f"vertical in {vertical['in']} out {vertical['out']} (true {vertical['true_in']} / {vertical['true_out']}, "
            f"{vertical['optional_in']} / {vertical['optional_out']} optional at the border)"
            in format_counts(summary["zones"], errors))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len(events) == summary["events"] > 0
    assert {e["source"] for e in events} == {paths["video"].name}
    for name, line in summary["zones"]["lines"].items():
        assert line["in"] == sum(e["zone"] == name and e["direction"] == "in" for e in events)
        assert line["out"] == sum(e["zone"] == name and e["direction"] == "out" for e in events)
    polygon = summary["zones"]["polygons"]["top_left"]
    assert polygon["entries"] == sum(e["zone"] == "top_left" and e["direction"] == "enter" for e in events) > 0
    assert polygon["exits"] == sum(e["zone"] == "top_left" and e["direction"] == "exit" for e in events)
    assert polygon["entries"] - polygon["exits"] == polygon["inside_at_end"]
    occupancy = (out / "occupancy.csv").read_text().splitlines()
    assert occupancy[0] == "frame,source,top_left" and len(occupancy) == 121
