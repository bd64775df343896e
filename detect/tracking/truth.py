"""True line crossings of a clip whose objects' boxes and identities are known (detect.data.synthetic_video writes
them beside its gt.txt as counts.json: the same ZoneCounter run on the true boxes and ids), and the counting error of
a run against them (infer.py with zones and track_gt)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from detect.structures import Classes, Result
from detect.tracking.counting import ZoneCounter
from detect.tracking.zones import LineZoneSpec, ZonesSpec, load_zones

COUNTS_FILE = "counts.json"  # beside a gt.txt: the true crossings of the lines of a zones config


def line_key(line: LineZoneSpec) -> dict[str, Any]:
    return {"start": list(line.start), "end": list(line.end), "min_frames": line.min_frames}


def true_counts(zones: str | ZonesSpec, frames: Iterable[tuple[int, np.ndarray, np.ndarray, list[str]]],
                size: tuple[int, int], fps: float, class_names: list[str]) -> dict[str, Any]:
    """counts.json's content: every crossing of `zones`' lines by the true (frame, xyxy boxes, ids, class names)
    of each frame of a height x width clip, and each line's totals."""
    spec = load_zones(zones)
    counter = ZoneCounter(ZonesSpec(spec.name, spec.lines, ()), fps)
    classes = Classes(class_names, list(range(1, len(class_names) + 1)))
    image = np.zeros((*size, 3), dtype=np.uint8)
    crossings = []
    for frame, boxes, ids, names in frames:
        labels = np.array([class_names.index(name) + 1 for name in names], dtype=np.int64)
        result = Result(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.ones(len(ids), dtype=np.float32),
                        labels, classes, image, frame, track_ids=np.asarray(ids, dtype=np.int64))
        crossings += [{key: event[key] for key in ("frame", "track_id", "class", "zone", "direction")}
                      for event in counter.update(result).events]
    lines = counter.summary(class_names)["lines"]
    return {"zones": spec.name, "lines": {line.name: {**line_key(line), **lines[line.name]} for line in spec.lines},
            "crossings": crossings}
