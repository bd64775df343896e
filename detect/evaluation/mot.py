"""Tracking evaluation of a MOTChallenge tracks file against a gt.txt: HOTA, DetA, AssA, MOTA, IDF1, ID switches,
computed by the `trackers` package's evaluator (TrackEval's matching and formulas), printed and saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trackers.eval import evaluate_mot_sequence

from detect.utils.errors import DetectError, first_line

METRICS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "DetRe", "DetPr")


def _frame(line: str) -> int:
    """The frame number (from 1) of a MOT line."""
    return int(line.split(",", 1)[0])


def evaluate_tracking(gt_path: str | Path, tracks_path: str | Path, output_dir: str | Path | None = None,
                      last_frame: int | None = None) -> dict[str, Any]:
    """The metrics of `tracks_path` against `gt_path` on the gt's frames up to `last_frame` (from 1: the last frame
    the run processed, so a run stopped early is scored on the frames it saw; None: every gt frame). The gt used is
    written as tracking_gt.txt beside the tracks (or in `output_dir`, with tracking_metrics.json)."""
    gt_path, tracks_path = Path(gt_path), Path(tracks_path)
    try:
        gt_lines = [line for line in gt_path.read_text().splitlines() if line.strip()]
        frames = {_frame(line) for line in gt_lines if last_frame is None or _frame(line) <= last_frame}
    except (OSError, ValueError) as error:
        raise DetectError(f"track_gt={gt_path} is not a MOTChallenge gt.txt ({first_line(error)}); lines are "
                          "frame,id,x,y,w,h,consider,class,visibility") from None
    if not tracks_path.is_file() or not tracks_path.read_text().strip():
        metrics: dict[str, Any] = {name: 0.0 for name in METRICS} | {"IDSW": 0, "note": "no confirmed track"}
    else:
        folder = Path(output_dir) if output_dir is not None else tracks_path.parent
        used_gt = folder / "tracking_gt.txt"
        used_gt.write_text("".join(line + "\n" for line in gt_lines if _frame(line) in frames))
        result = evaluate_mot_sequence(used_gt, tracks_path, metrics=["CLEAR", "HOTA", "Identity"])
        metrics = {"HOTA": result.HOTA.HOTA, "DetA": result.HOTA.DetA, "AssA": result.HOTA.AssA,
                   "MOTA": result.CLEAR.MOTA, "MOTP": result.CLEAR.MOTP, "IDF1": result.Identity.IDF1,
                   "IDSW": int(result.CLEAR.IDSW), "DetRe": result.HOTA.DetRe, "DetPr": result.HOTA.DetPr}
    metrics |= {"gt": str(gt_path), "tracks": str(tracks_path), "frames_evaluated": len(frames)}
    if output_dir is not None:
        (Path(output_dir) / "tracking_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def format_tracking_metrics(metrics: dict[str, Any]) -> str:
    """One line: HOTA 0.712 DetA ... IDSW 3 (n frames)."""
    values = " ".join(f"{name} {metrics[name]:.3f}" if isinstance(metrics[name], float) else f"{name} {metrics[name]}"
                      for name in METRICS)
    return f"{values} ({metrics['frames_evaluated']} frames{'; ' + metrics['note'] if 'note' in metrics else ''})"
