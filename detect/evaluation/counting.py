"""The counting error of a run against the true crossings beside its ground truth (infer.py with zones and track_gt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detect.tracking.truth import COUNTS_FILE, line_key
from detect.tracking.zones import ZonesSpec


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
        if known is None or {key: known[key] for key in ("start", "end")} != line_key(line):
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
