"""True line crossings of a clip whose objects' boxes and identities are known (detect.data.synthetic_video writes
them beside its gt.txt as counts.json: the same ZoneCounter run on the true boxes and ids), and the counting error of
a run against them (infer.py with zones and track_gt)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from detect.inference.counting import ZoneCounter
from detect.inference.result import Result
from detect.inference.zones import LineZoneSpec, ZonesSpec, load_zones
from detect.model import Classes

COUNTS_FILE = "counts.json"  # beside a gt.txt: the true crossings of the lines of a zones config


def _line_key(line: LineZoneSpec) -> dict[str, Any]:
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
    return {"zones": spec.name, "lines": {line.name: {**_line_key(line), **lines[line.name]} for line in spec.lines},
            "crossings": crossings}


def counting_error(gt_path: str | Path, spec: ZonesSpec, counted: dict[str, Any], last_frame: int) -> dict[str, Any]:
    """Per line of `spec`: the true in / out up to `last_frame` (the source index of the last frame processed)
    from the counts.json beside `gt_path`, the counted ones (summary.json's `zones.lines`), their differences and
    `abs_error` = |in error| + |out error|; a line with no true counts (another geometry) gets a note."""
    path = Path(gt_path).parent / COUNTS_FILE
    if not path.is_file():
        return {"note": f"no {COUNTS_FILE} beside {gt_path}: no true counts"}
    truth = json.loads(path.read_text())
    errors: dict[str, Any] = {"counts": str(path)}
    for line in spec.lines:
        known = truth["lines"].get(line.name)
        if known is None or {key: known[key] for key in ("start", "end", "min_frames")} != _line_key(line):
            errors[line.name] = {"note": f"{path} has no true counts for this line (name and geometry)"}
            continue
        crossings = [c for c in truth["crossings"] if c["zone"] == line.name and c["frame"] <= last_frame]
        true_in = sum(c["direction"] == "in" for c in crossings)
        true_out = len(crossings) - true_in
        got_in, got_out = counted[line.name]["in"], counted[line.name]["out"]
        errors[line.name] = {"true_in": true_in, "true_out": true_out, "in": got_in, "out": got_out,
                             "error_in": got_in - true_in, "error_out": got_out - true_out,
                             "abs_error": abs(got_in - true_in) + abs(got_out - true_out)}
    return errors
