"""Line counting against the truth: synthetic clips (seeds, crowding, occlusion; shapes entering and leaving at the
edges), configs/zones/synthetic.yaml's lines, each line's counted and true in / out and the total absolute error
as a fraction of the true crossings (those that only a shape's part in view makes, its centre past the border,
optional; "strict": every crossing in view required), for the true ids and each tracker, by today's rule
(detect.tracking.crossing) and the rule before issue 25 (supervision's LineZone, its default anchors: the box's four
corners). The boxes are the true ones (the counts with true ids must be exact), those of the shapes at least 40 %
visible ("visible": what a perfect detector would see; occluded shapes are lost), the true ones with noise and misses
(--jitter), or a detector's (--weights).

    uv run python -m benchmarks.counting [--weights outputs/<demo run>/checkpoints/best.ckpt] [--clips 0:10:200 ..]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from detect.data.synthetic_video import gt_frames, write_tracking_video
from detect.evaluation.counting import count_error
from detect.structures import Classes, Result
from detect.tracking.counting import ZoneCounter
from detect.tracking.trackers import TRACKER_CLASSES, Tracker

CLASSES = Classes(["shape"], [1])
CLIPS = ("0:10:200", "3:6:150", "5:14:150", "11:20:150", "21:24:150")  # seed:objects:frames
ZONES = "synthetic"
FPS = 25.0


def true_results(gt: Path, frames: int, size: tuple[int, int], visible_only: bool = False) -> Iterator[Result]:
    """The clip's true boxes with their true ids, frame by frame (`visible_only`: gt_frames')."""
    image = np.zeros((*size, 3), dtype=np.uint8)
    for frame, boxes, ids in gt_frames(gt, frames, visible_only):
        yield Result(boxes.astype(np.float32), np.ones(len(ids), dtype=np.float32), np.ones(len(ids), dtype=np.int64),
                     CLASSES, image, frame, track_ids=ids)


def jittered(results: Iterable[Result], sigma: float, miss: float, seed: int) -> Iterator[Result]:
    """`results` with Gaussian noise of `sigma` px on every box side and a fraction `miss` of the boxes dropped: a
    detector's flaws without a detector."""
    rng = np.random.default_rng(seed)
    for result in results:
        keep = rng.random(len(result)) >= miss
        boxes = result.boxes[keep] + rng.normal(0, sigma, size=(int(keep.sum()), 4)).astype(np.float32)
        yield Result(boxes, result.scores[keep], result.labels[keep], CLASSES, result.image, result.frame)


def tracked(results: Iterable[Result], tracker: str) -> Iterator[Result]:
    """`results` with `tracker`'s ids instead of theirs."""
    adapter = Tracker(tracker, frame_rate=FPS)
    for result in results:
        result.track_ids = None
        yield adapter.update(result)


def count(results: Iterable[Result]) -> dict[str, dict[str, dict[str, int]]]:
    """Each line's in / out by today's rule ("after") and by supervision's LineZone with its default anchors
    ("before")."""
    counter = ZoneCounter(ZONES, FPS)
    before = {line.name: sv.LineZone(sv.Point(*line.start), sv.Point(*line.end)) for line in counter.spec.lines}
    for result in results:
        counter.update(result)
        confirmed = result.track_ids >= 0
        detections = sv.Detections(xyxy=result.boxes[confirmed].astype(np.float64),
                                   tracker_id=result.track_ids[confirmed].astype(int))
        for line in before.values():
            line.trigger(detections)
    counter.finish()
    return {"after": counter.counts()["lines"],
            "before": {name: {"in": line.in_count, "out": line.out_count} for name, line in before.items()}}


def error(counted: dict[str, dict[str, int]], truth: dict[str, Any]) -> tuple[int, int, int, int]:
    """The absolute error summed over lines and directions (border crossings optional: count_error), the same with
    every crossing in view required ("strict"), the required true crossings and the optional ones."""
    lines = truth["lines"]
    keys = [(name, d) for name in lines for d in ("in", "out")]
    required = {key: lines[key[0]][key[1]] for key in keys}
    optional = {key: lines[key[0]][f"{key[1]}_optional"] for key in keys}
    return (sum(abs(count_error(counted[n][d], required[n, d], optional[n, d])) for n, d in keys),
            sum(abs(count_error(counted[n][d], required[n, d] + optional[n, d], 0)) for n, d in keys),
            sum(required.values()), sum(optional.values()))


def clip_spec(text: str) -> tuple[int, int, int]:
    """seed:objects:frames as three integers (argparse reports a bad one in one line)."""
    try:
        seed, objects, frames = (int(value) for value in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not seed:objects:frames (e.g. 0:10:200)") from None
    return seed, objects, frames


def measure(clips: list[str], trackers: list[str], weights: str | None, cache_dir: Path | None,
            jitter: tuple[float, float]) -> list[dict]:
    """A row per clip, boxes (truth, jittered truth, or detector), ids (truth or a tracker) and rule."""
    detector = None
    if weights is not None:
        from detect.inference import Detector  # torch and the model only with a detector

        detector = Detector.load(weights)
    rows = []
    for clip in clips:
        seed, objects, frames = clip_spec(clip)
        paths = write_tracking_video(cache_dir, seed=seed, frames=frames, objects=objects, fps=FPS)
        truth = json.loads(paths["counts"].read_text())
        size = (120, 160)
        feeds = {("truth", "truth"): lambda: true_results(paths["gt"], frames, size)}
        feeds |= {("truth", name): lambda name=name: tracked(true_results(paths["gt"], frames, size), name)
                  for name in trackers}
        feeds |= {("visible", name): lambda name=name: tracked(true_results(paths["gt"], frames, size, True), name)
                  for name in trackers}
        if jitter[0] > 0 or jitter[1] > 0:
            feeds |= {("jittered", name): lambda name=name: tracked(jittered(true_results(paths["gt"], frames, size),
                                                                            *jitter, seed), name)
                      for name in trackers}
        if detector is not None:  # detected once, tracked by each tracker
            detections = list(detector.stream(paths["video"]))
            feeds |= {("detector", name): lambda name=name: tracked(detections, name) for name in trackers}
        for (boxes, ids), results in feeds.items():
            for rule, counted in count(results()).items():
                abs_error, strict_error, true, optional = error(counted, truth)
                rows.append({"clip": clip, "boxes": boxes, "ids": ids, "rule": rule, "counted": counted,
                             "truth": truth["lines"], "abs_error": abs_error, "strict_error": strict_error,
                             "true": true, "optional": optional})
    return rows


def table(rows: list[dict]) -> str:
    """A markdown table: each row's counted (true, + optional) in / out per line and its error, then the totals:
    the error with border crossings optional against the required crossings, and strict (every crossing in view
    required) against all of them."""
    names = list(rows[0]["truth"]) if rows else []
    header = ["clip", "boxes", "ids", "rule", *(f"{name} in / out (true + optional)" for name in names), "error",
              "strict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{row['counted'][n]['in']} / {row['counted'][n]['out']} ({t['in']} / {t['out']} + "
                 f"{t['in_optional']} / {t['out_optional']})" for n in names for t in [row["truth"][n]]]
        lines.append(f"| {row['clip']} | {row['boxes']} | {row['ids']} | {row['rule']} | {' | '.join(cells)} | "
                     f"{row['abs_error']} of {row['true']} | "
                     f"{row['strict_error']} of {row['true'] + row['optional']} |")
    lines += ["", "| boxes | ids | rule | total error | strict |", "|---|---|---|---|---|"]
    for key in dict.fromkeys((row["boxes"], row["ids"], row["rule"]) for row in rows):
        mine = [row for row in rows if (row["boxes"], row["ids"], row["rule"]) == key]
        wrong, strict = sum(row["abs_error"] for row in mine), sum(row["strict_error"] for row in mine)
        true, optional = sum(row["true"] for row in mine), sum(row["optional"] for row in mine)
        lines.append(f"| {' | '.join(key)} | {wrong} of {true} ({100 * wrong / max(true, 1):.1f} %) | "
                     f"{strict} of {true + optional} ({100 * strict / max(true + optional, 1):.1f} %) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), type=str, help="seed:objects:frames of each clip")
    parser.add_argument("--trackers", nargs="+", default=sorted(TRACKER_CLASSES), choices=sorted(TRACKER_CLASSES))
    parser.add_argument("--jitter", type=float, nargs=2, default=[1.5, 0.05], metavar=("PX", "MISS"),
                        help="also count the true boxes with this noise (px) and fraction missed; 0 0: not")
    parser.add_argument("--weights", default=None, help="a checkpoint: also count the detector's tracks")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $DETECT_CACHE or ~/.cache/detect")
    args = parser.parse_args(argv)
    for clip in args.clips:
        try:
            clip_spec(clip)
        except argparse.ArgumentTypeError as bad:
            parser.error(f"--clips: {bad}")
    rows = measure(args.clips, args.trackers, args.weights, args.cache_dir, tuple(args.jitter))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
