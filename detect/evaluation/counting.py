"""The counting error of a run against the true crossings beside its ground truth (infer.py with zones and track_gt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detect.tracking.truth import COUNTS_FILE, line_key
from detect.tracking.zones import ZonesSpec


def count_error(counted: int, required: int, optional: int) -> int:
    """A count's error against `required` true crossings and `optional` ones (a viewer may count them or not):
    negative by the required ones it misses, positive by what it counts beyond both, else 0."""
    return min(0, counted - required) + max(0, counted - required - optional)


def counting_error(gt_path: str | Path, spec: ZonesSpec, counted: dict[str, Any], last_frame: int) -> dict[str, Any]:
    """Per line of `spec`: the true in / out up to `last_frame` (the source index of the last frame processed)
    from the counts.json beside `gt_path` (required, and optional: detect.tracking.truth), the counted ones
    (summary.json's `zones.lines`), their errors (count_error) and `abs_error` = |in error| + |out error|; a line
    with no true counts (another geometry) gets a note."""
    path = Path(gt_path).parent / COUNTS_FILE
    if not path.is_file():
        return {"note": f"no {COUNTS_FILE} beside {gt_path}: no true counts"}
    truth = json.loads(path.read_text())
    errors: dict[str, Any] = {"counts": str(path)}
    for line in spec.lines:
        known = truth["lines"].get(line.name)
        if known is None or {key: known[key] for key in ("start", "end")} != line_key(line):
            errors[line.name] = {"note": f"{path} has no true counts for this line (name and geometry)"}
            continue
        crossings = [c for c in truth["crossings"] if c["zone"] == line.name and c["frame"] <= last_frame]
        mine: dict[str, Any] = {}
        for direction in ("in", "out"):
            required = sum(c["direction"] == direction and not c["optional"] for c in crossings)
            optional = sum(c["direction"] == direction and c["optional"] for c in crossings)
            got = counted[line.name][direction]
            mine |= {f"true_{direction}": required, f"optional_{direction}": optional, direction: got,
                     f"error_{direction}": count_error(got, required, optional)}
        errors[line.name] = mine | {"abs_error": abs(mine["error_in"]) + abs(mine["error_out"])}
    return errors
