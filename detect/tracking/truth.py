"""True line crossings of a clip whose objects' boxes and identities are known (detect.data.synthetic_video writes
them beside its gt.txt as counts.json), from geometry alone: a crossing is a step of a box centre, from one frame to
the next, that meets the counting segment and lands strictly on its other side. It never goes through ZoneCounter,
so the counter's rule (anchors, bands, windows, bridging) can be checked against it.

The object's own centre (its whole box, also where the frame's border cuts it) decides. A crossing that only the
part in view makes (the object's centre is past the border: a sliver of it slides through the segment's end) is
optional, as MOTChallenge's ignored boxes: a viewer may count it or not, and so may a counter (count_error)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from detect.tracking.zones import LineZoneSpec, ZonesSpec, load_zones

COUNTS_FILE = "counts.json"  # beside a gt.txt: the true crossings of the lines of a zones config

Point = tuple[float, float]


def line_key(line: LineZoneSpec) -> dict[str, Any]:
    """A line's geometry as counts.json records it: the truth depends on nothing else."""
    return {"start": list(line.start), "end": list(line.end)}


def _orientation(a: Point, b: Point, c: Point) -> int:
    """+1 when c is left of a -> b as drawn with y down (counter-clockwise on screen), -1 right, 0 on the line."""
    value = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return -int(np.sign(value))  # y down flips the usual sign


def _meets(p: Point, q: Point, a: Point, b: Point) -> bool:
    """The step p -> q, which reaches the line through a and b, meets the segment a-b (ends included)."""
    return _orientation(p, q, a) * _orientation(p, q, b) <= 0


def segment_crossings(track: Sequence[tuple[int, Point]], start: Point, end: Point) -> list[tuple[int, str]]:
    """(frame, "in" | "out") of each crossing of the segment start -> end by one object's centres (frame, (x, y))
    in frame order: "in" onto the left of start -> end as drawn (y down). A centre on the line has no side: a track
    that starts on it, or stays on it and leaves, has not crossed; one that steps around the segment's ends changes
    side uncounted."""
    crossings, side, previous = [], 0, None
    for frame, centre in track:
        now = _orientation(start, end, centre)
        if now and side and now != side and previous is not None and _meets(previous, centre, start, end):
            crossings.append((frame, "in" if now > 0 else "out"))
        side = now or side
        previous = centre
    return crossings


def _unmatched(seen: list[tuple[int, str]], required: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The crossings of `seen` left when each of `required` takes the nearest one (in frames) of its direction."""
    left = list(seen)
    for frame, direction in required:
        mine = [crossing for crossing in left if crossing[1] == direction]
        if mine:
            left.remove(min(mine, key=lambda crossing: abs(crossing[0] - frame)))
    return left


def true_counts(zones: str | ZonesSpec, frames: Iterable[tuple[int, np.ndarray, np.ndarray, list[str]]],
                frame_size: tuple[int, int]) -> dict[str, Any]:
    """counts.json's content from each frame's (frame, whole xyxy boxes: past the border where it cuts them, ids,
    class names) in a frame of `frame_size` (width, height): every crossing of `zones`' lines by the boxes' centres
    ("optional": false), and by the centres of their parts in view where those cross and the whole doesn't
    ("optional": true); each line's totals (in, out and per class: the required ones; in_optional, out_optional)."""
    spec = load_zones(zones)
    whole: dict[int, list[tuple[int, Point]]] = defaultdict(list)
    in_view: dict[int, list[tuple[int, Point]]] = defaultdict(list)
    classes: dict[int, str] = {}
    for frame, boxes, ids, names in frames:
        for box, track_id, name in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), ids, names):
            x1, y1, x2, y2 = np.clip(box, 0, [frame_size[0], frame_size[1]] * 2)
            whole[int(track_id)].append((frame, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)))
            in_view[int(track_id)].append((frame, ((x1 + x2) / 2, (y1 + y2) / 2)))
            classes[int(track_id)] = name
    crossings = []
    for line in spec.lines:
        for track_id, track in whole.items():
            required = segment_crossings(track, line.start, line.end)
            optional = _unmatched(segment_crossings(in_view[track_id], line.start, line.end), required)
            crossings += [{"frame": frame, "track_id": track_id, "class": classes[track_id], "zone": line.name,
                           "direction": direction, "optional": is_optional}
                          for found, is_optional in ((required, False), (optional, True)) for frame, direction in found]
    crossings.sort(key=lambda crossing: (crossing["frame"], crossing["track_id"]))
    lines = {}
    for line in spec.lines:
        counts: dict[str, Any] = line_key(line)
        for direction in ("in", "out"):
            mine = [c for c in crossings if c["zone"] == line.name and c["direction"] == direction]
            required = [c["class"] for c in mine if not c["optional"]]
            counts[direction] = len(required)
            counts[f"{direction}_optional"] = len(mine) - len(required)
            counts[f"{direction}_per_class"] = {name: required.count(name) for name in sorted(set(required))}
        lines[line.name] = counts
    return {"zones": spec.name, "lines": lines, "crossings": crossings}
