"""The true crossings from geometry alone (detect.tracking.truth), on hand-made trajectories: what a person watching
would count, whatever the counter's rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detect.data.synthetic_video import write_tracking_video
from detect.evaluation.counting import count_error
from detect.tracking.truth import segment_crossings, true_counts
from detect.tracking.zones import load_zones

DOWN = ((80.0, 0.0), (80.0, 120.0))  # a vertical line drawn downwards: "in" is onto the frame's right
SHORT = ((80.0, 20.0), (80.0, 100.0))  # the same, as a segment that ends 20 px from the frame's top and bottom


def track(xs: list[float], y: float = 60.0, first: int = 0) -> list[tuple[int, tuple[float, float]]]:
    return [(first + f, (float(x), y)) for f, x in enumerate(xs)]


def test_a_straight_pass_is_one_crossing_at_the_first_frame_on_the_other_side() -> None:
    assert segment_crossings(track(list(range(60, 101, 4))), *DOWN) == [(6, "in")]  # x = 84 at frame 6
    assert segment_crossings(track(list(range(100, 59, -3))), *DOWN) == [(7, "out")]  # x = 79 at frame 7


def test_a_pass_and_return_is_two_crossings_in_then_out() -> None:
    xs = [70, 75, 79, 82, 86, 84, 81, 78, 74]
    assert segment_crossings(track(xs), *DOWN) == [(3, "in"), (7, "out")]


def test_a_start_on_or_straddling_the_line_counts_only_a_real_change_of_side() -> None:
    assert segment_crossings(track([80, 80, 83, 88, 95]), *DOWN) == []  # born on the line: no side to leave
    assert segment_crossings(track([80, 84, 80, 77, 70]), *DOWN) == [(3, "out")]  # then really crosses back
    # a box that straddles the line (centre just left of it) crosses when its centre does, not before
    assert segment_crossings(track([79, 79.5, 79, 79.5, 81, 90]), *DOWN) == [(4, "in")]


def test_touching_the_line_or_leaving_the_frame_on_it_is_no_crossing() -> None:
    assert segment_crossings(track([70, 75, 80]), *DOWN) == []  # ends on the line (leaves the frame there)
    assert segment_crossings(track([70, 75, 80, 80, 76, 70]), *DOWN) == []  # touches it and goes back
    assert segment_crossings(track([70, 75, 80, 80, 85]), *DOWN) == [(4, "in")]  # stays on it, then goes on


def test_a_pass_beyond_the_segment_ends_is_no_crossing() -> None:
    assert segment_crossings(track([60, 70, 90, 100], y=110), *SHORT) == []  # below the segment's end
    # a step around the end changes side uncounted; crossing back through the segment is counted
    around = [(0, (70.0, 105.0)), (1, (90.0, 103.0)), (2, (90.0, 60.0)), (3, (70.0, 60.0))]
    assert segment_crossings(around, *SHORT) == [(3, "out")]
    assert segment_crossings([(0, (70.0, 101.0)), (1, (90.0, 99.0))], *SHORT) == [(1, "in")]  # through y = 100
    assert segment_crossings([(0, (70.0, 100.0)), (1, (90.0, 100.0))], *SHORT) == [(1, "in")]  # the end counts


def test_a_horizontal_line_drawn_rightwards_counts_upward_moves_in() -> None:
    up = [(f, (50.0 + f, 80.0 - 5 * f)) for f in range(9)]  # y = 80 .. 40
    assert segment_crossings(up, (0.0, 60.0), (160.0, 60.0)) == [(5, "in")]
    assert segment_crossings(up, (160.0, 60.0), (0.0, 60.0)) == [(5, "out")]  # the same line drawn leftwards


def test_true_counts_of_boxes_per_line_direction_and_class() -> None:
    zones = {"name": "doors", "lines": {"v": {"start": [80, 0], "end": [80, 120]},
                                        "h": {"start": [0, 60], "end": [160, 60]}}}
    frames = []
    for f in range(20):  # a square moves right along y = 30 (crosses v), a disc moves down along x = 20 (crosses h)
        boxes = [[50 + 4 * f, 20, 70 + 4 * f, 40], [10, 30 + 3 * f, 30, 50 + 3 * f]]
        frames.append((f, np.array(boxes, dtype=np.float64), np.array([1, 2]), ["square", "disc"]))
    counts = true_counts(zones, frames, (160, 120))
    assert counts["lines"]["v"] == {"start": [80.0, 0.0], "end": [80.0, 120.0], "in": 1, "out": 0, "in_optional": 0,
                                    "out_optional": 0, "in_per_class": {"square": 1}, "out_per_class": {}}
    assert (counts["lines"]["h"]["in"], counts["lines"]["h"]["out"]) == (0, 1)
    # the square's centre 60 + 4f passes 80 at f = 5 (on the line), beyond at f = 6; the disc's 40 + 3f passes 60
    # at f = 7 (60.999...: 61 > 60)
    assert [(c["frame"], c["track_id"], c["zone"], c["direction"], c["optional"]) for c in counts["crossings"]] == [
        (6, 1, "v", "in", False), (7, 2, "h", "out", False)]


def test_a_crossing_that_only_the_part_in_view_makes_is_optional() -> None:
    """Two 40 px squares move right under the top border: one with 7 px of it in view (its centre 13 px above the
    frame: the sliver's centre crosses the vertical line, the object's passes above the segment's end), one with
    30 px in view (its centre is in the frame: required, once, though its part in view crosses too)."""
    zones = {"name": "door", "lines": {"v": {"start": [80, 0], "end": [80, 120]}}}
    frames = [(f, np.array([[50 + 4 * f, -33, 90 + 4 * f, 7], [50 + 4 * f, -10, 90 + 4 * f, 30]], dtype=np.float64),
               np.array([1, 2]), ["square", "disc"]) for f in range(10)]
    counts = true_counts(zones, frames, (160, 120))
    assert [(c["frame"], c["track_id"], c["optional"]) for c in counts["crossings"]] == [(3, 1, True), (3, 2, False)]
    line = counts["lines"]["v"]
    assert (line["in"], line["in_optional"], line["in_per_class"], line["out"]) == (1, 1, {"disc": 1}, 0)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_synthetic_clips_truth_matches_its_shapes_motion(tmp_path: Path, seed: int) -> None:
    """Each shape moves at constant speed: its centre crosses a line through the whole frame at most once, and
    does when its first and last centres in the frame lie on the line's two sides."""
    paths = write_tracking_video(tmp_path, seed=seed, frames=150, objects=6)
    rows = np.loadtxt(paths["gt"], delimiter=",", ndmin=2)
    truth = json.loads(paths["counts"].read_text())
    for line in load_zones("synthetic").lines:
        axis = 0 if line.start[0] == line.end[0] else 1  # the synthetic lines are vertical or horizontal
        level = line.start[axis]
        expected = 0
        for track_id in np.unique(rows[:, 1]):
            mine = rows[rows[:, 1] == track_id]
            centres = mine[:, 2 + axis] + mine[:, 4 + axis] / 2
            sides = np.sign(centres - level)
            sides = sides[sides != 0]
            expected += int(len(sides) > 0 and sides[0] != sides[-1])
        got = [c for c in truth["crossings"] if c["zone"] == line.name]
        totals = truth["lines"][line.name]
        assert len(got) == expected == sum(totals[key] for key in ("in", "out", "in_optional", "out_optional"))


def test_an_optional_crossing_may_be_counted_or_not_and_nothing_beyond() -> None:
    # 2 required and 1 optional true crossings: 2 or 3 counted are right, 1 misses one, 4 is one too many
    assert [count_error(counted, 2, 1) for counted in range(5)] == [-2, -1, 0, 0, 1]
    assert [count_error(counted, 2, 0) for counted in (1, 2, 3)] == [-1, 0, 1]
