"""The crossing rule of a counting line (detect.tracking.crossing through ZoneCounter): the true boxes and ids of
every synthetic clip count exactly their independent truth; jitter, id switches and back-and-forth do not over- or
under-count; the anchor and the line's settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_counting import tracked

from detect.data.synthetic_video import gt_frames, write_tracking_video
from detect.tracking.counting import ZoneCounter
from detect.tracking.zones import load_zones
from detect.utils.errors import DetectError

CLIPS = [(0, 10, 200), (3, 6, 150), (5, 14, 150), (11, 20, 150)]  # seed, objects, frames: crowded, occluded


def door(**settings: Any) -> dict[str, Any]:
    """A vertical line at x = 80 drawn downwards ("in" is onto the frame's right) with `settings`."""
    return {"lines": {"door": {"start": [80, 0], "end": [80, 120], **settings}}}


def run(zones: dict[str, Any], steps: list[tuple[list[float], int]], fps: float = 10.0) -> list[tuple]:
    """The events of one box a frame, 20 px wide and high, centred at (x, 60), with its track id."""
    counter = ZoneCounter(zones, fps)
    events = []
    for frame, (xs, track_id) in enumerate(steps):
        boxes = [[x - 10, 50, x + 10, 70] for x in xs]
        events += counter.update(tracked(frame, boxes, [track_id] * len(xs))).events
    return [(e["frame"], e["track_id"], e["direction"]) for e in events]


@pytest.mark.parametrize(("seed", "objects", "frames"), CLIPS)
def test_the_true_boxes_and_ids_count_exactly_the_independent_truth(tmp_path: Path, seed: int, objects: int,
                                                                     frames: int) -> None:
    paths = write_tracking_video(tmp_path, seed=seed, frames=frames, objects=objects)
    truth = json.loads(paths["counts"].read_text())
    counter = ZoneCounter("synthetic", fps=25.0)
    events = []
    for frame, boxes, ids in gt_frames(paths["gt"], frames):
        events += counter.update(tracked(frame, boxes.tolist(), ids.tolist())).events
    events += counter.finish()  # a shape that the clip's end finds just past a line, within the band
    assert sorted((e["track_id"], e["zone"], e["direction"]) for e in events if e["zone"] in truth["lines"]) == sorted(
        (c["track_id"], c["zone"], c["direction"]) for c in truth["crossings"])
    # the true boxes are the shapes' parts in view: they make the optional crossings (a centre past the border) too
    assert counter.counts()["lines"] == {name: {"in": line["in"] + line["in_optional"],
                                                "out": line["out"] + line["out_optional"]}
                                         for name, line in truth["lines"].items()}


def test_jitter_on_the_line_counts_one_crossing_with_the_band_and_many_without() -> None:
    xs = [70, 74, 78, 81, 79, 81.5, 78.5, 81, 79, 84, 88, 92]  # wobbles +-1.5 px about x = 80, then goes on
    steps = [([x], 1) for x in xs]
    assert run(door(band=2), steps) == [(9, 1, "in")]
    assert len(run(door(window_s=0), steps)) == 7  # every change of side: the test can fail


def test_min_frames_waits_for_the_new_side_to_hold() -> None:
    steps = [([x], 1) for x in [70, 75, 82, 78, 84, 88, 92]]  # one frame past the line, back, then across
    assert run(door(min_frames=2, window_s=0), steps) == [(5, 1, "in")]
    assert run(door(window_s=0), steps) == [(2, 1, "in"), (3, 1, "out"), (4, 1, "in")]


def test_an_id_switch_across_the_line_is_counted_once() -> None:
    # id 1 vanishes just before the line, id 2 appears just past it: one crossing, by id 2
    switch = [([x], 1) for x in (60, 66, 72, 77)] + [([x], 2) for x in (83, 89, 95)]
    assert run(door(), switch) == [(4, 2, "in")]
    assert run(door(bridge_s=0), switch) == []  # without the bridge the new id is born on the far side: lost
    # id 1 crosses, then the tracker gives the box back on the line as id 2, which goes on: still one crossing
    back = [([x], 1) for x in (70, 76, 83, 87)] + [([x], 2) for x in (79, 85, 91, 97)]
    assert run(door(band=2), back) == [(2, 1, "in")]
    assert run(door(band=2, bridge_s=0), back) == [(2, 1, "in"), (5, 2, "in")]


def test_ids_at_the_frame_border_and_far_away_are_not_bridged() -> None:
    leave_enter = [([x], 1) for x in (60, 66, 72, 77)] + [([x], 2) for x in (150, 140)]  # 2 enters at the border
    assert run(door(), leave_enter) == []
    far = [([x], 1) for x in (60, 66, 72, 77)] + [([x], 2) for x in (110, 115)]  # 33 px away: a box is 20 wide
    assert run(door(), far) == []


def test_a_box_far_from_where_its_track_was_heading_is_another_object() -> None:
    # id 1 walks away from the line (4 px a frame) and is lost; id 2 appears 18 px from it, past the line: within a
    # box size (20 px) of where 1 was, but 22 px from where it was heading: another object, born there
    away = [([x], 1) for x in (78, 74, 70, 66)] + [([x], 2) for x in (84, 88)]
    assert run(door(), away) == []
    # the tracker gives id 1 another object's box 28 px ahead, past the line: not a step of one object
    stolen = [([x], 1) for x in (60, 64, 68, 72, 100, 104)]
    assert run(door(), stolen) == []
    assert run(door(), [([x], 1) for x in (60, 64, 68, 72, 76, 80, 84)]) == [(6, 1, "in")]


def test_one_count_per_track_and_direction_within_the_window() -> None:
    steps = [([x], 1) for x in [74, 86, 74, 86, 74, 74, 74, 74, 74, 74, 74, 74, 86]]  # at 10 FPS: 1 s = 10 frames
    assert run(door(), steps) == [(1, 1, "in"), (2, 1, "out"), (12, 1, "in")]
    assert len(run(door(window_s=0), steps)) == 5


def test_the_anchor_decides_which_point_crosses() -> None:
    counters = {anchor: ZoneCounter({"lines": {"floor": {"start": [0, 60], "end": [160, 60], "anchor": anchor}}})
                for anchor in ("center", "bottom_center")}  # drawn rightwards: "in" is upwards
    frames: dict[str, list[int]] = {anchor: [] for anchor in counters}
    for f in range(16):  # a person 40 px tall walks up 4 px a frame: centre y = 90 - 4f, feet y = 110 - 4f
        box = [[60, 70 - 4 * f, 80, 110 - 4 * f]]
        for anchor, counter in counters.items():
            frames[anchor] += [f for event in counter.update(tracked(f, box, [1])).events if event["direction"] == "in"]
    assert frames == {"center": [8], "bottom_center": [13]}


@pytest.mark.parametrize(("settings", "message"), [
    ({"anchor": "feet"}, "^line 'door': anchor='feet' is not one of center, "),
    ({"band": -1}, "^line 'door': band=-1.0 must be >= 0"),
    ({"min_frames": "two"}, "^line 'door': invalid literal for int"),
    ({"bridge": 1}, r"^line 'door' needs start and end \(and optionally anchor, min_frames, band, window_s, bridge_s"),
])
def test_bad_line_settings_are_one_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(DetectError, match=message):
        load_zones(door(**settings))


def test_a_track_that_vanishes_or_ends_just_past_the_line_has_crossed() -> None:
    vanish = [([x], 1) for x in (70, 75, 79, 81)] + [([], 1)]  # 1 px past, within the band, then gone
    assert run(door(band=2), vanish) == [(4, 1, "in")]
    counter = ZoneCounter(door(band=2, min_frames=3))
    for frame, x in enumerate((70, 75, 79, 85, 90)):  # past the band for 2 frames of 3 when the stream ends
        assert counter.update(tracked(frame, [[x - 10, 50, x + 10, 70]], [1])).events == []
    assert [(e["frame"], e["direction"]) for e in counter.finish()] == [(4, "in")]
    assert counter.counts()["lines"]["door"] == {"in": 1, "out": 0}
