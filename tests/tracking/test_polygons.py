"""Polygon zones count visits as a person would: a box that jitters on the border is one visit, and the true boxes
of every synthetic clip enter as often as their centres' paths say (geometry by matplotlib, not supervision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.path import Path as Outline
from test_counting import tracked
from test_crossing import CLIPS

from detect.data.synthetic_video import gt_frames, write_tracking_video
from detect.tracking.counting import ZoneCounter
from detect.tracking.zones import load_zones

SQUARE = [[40, 0], [120, 0], [120, 120], [40, 120]]


def visits(xs: list[float], **settings: Any) -> list[tuple[int, str]]:
    """(frame, enter | exit) of one 20 px box centred at (x, 60) a frame in SQUARE, at 10 frames a second."""
    counter = ZoneCounter({"polygons": {"room": {"points": SQUARE, "anchor": "center", **settings}}}, fps=10.0)
    events = []
    for frame, x in enumerate(xs):
        events += counter.update(tracked(frame, [[x - 10, 50, x + 10, 70]], [1])).events
    return [(event["frame"], event["direction"]) for event in events]


def test_a_box_that_jitters_on_the_border_is_one_visit() -> None:
    jitter = [41.0, 39.0] * 6  # frames 2-13: the centre steps over x = 40 and back every frame
    path = [60.0, 50.0, *jitter, 20.0, 10.0, 5.0]
    assert visits(path) == [(0, "enter"), (13, "exit")]  # left at frame 13: outside there and the 2 frames after
    one_frame = visits(path, min_frames=1)  # one frame outside ends a visit: each step back in is another entry
    assert [frame for frame, kind in one_frame if kind == "enter"] == [0, 4, 6, 8, 10, 12]
    assert [frame for frame, kind in one_frame if kind == "exit"] == [3, 5, 7, 9, 11, 13]


def test_polygon_min_frames_must_be_a_whole_number() -> None:
    with pytest.raises(Exception, match="min_frames=0 must be a whole number >= 1"):
        load_zones({"polygons": {"room": {"points": SQUARE, "min_frames": 0}}})


def true_entries(points: list, frames: list[tuple[int, Any, Any]]) -> int:
    """Runs of frames in which a track's box centre lies inside `points`, over all tracks."""
    outline, inside_before, entries = Outline(points), {}, 0
    for _, boxes, ids in frames:
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        now = dict(zip(ids.tolist(), outline.contains_points(centres)))
        entries += sum(inside and not inside_before.get(track_id, False) for track_id, inside in now.items())
        inside_before = now
    return entries


@pytest.mark.parametrize(("seed", "objects", "frames"), CLIPS)
def test_the_true_boxes_enter_the_polygon_as_often_as_their_paths_do(tmp_path: Path, seed: int, objects: int,
                                                                     frames: int) -> None:
    paths = write_tracking_video(tmp_path, seed=seed, frames=frames, objects=objects)
    polygon = load_zones("synthetic").polygons[0]
    counter = ZoneCounter("synthetic", fps=25.0)
    clip = list(gt_frames(paths["gt"], frames))
    for frame, boxes, ids in clip:
        counter.update(tracked(frame, boxes.tolist(), ids.tolist()))
    expected = true_entries([list(point) for point in polygon.points], clip)
    assert counter.summary()["polygons"][polygon.name]["entries"] == expected > 0
