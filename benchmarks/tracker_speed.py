"""How many milliseconds a tracker adds per frame at 20-40 boxes: each tracker of configs/tracker through the same
adapter infer.py uses (`Tracker.update` on a Result), on moving boxes with jitter, misses and false positives.

    uv run python -m benchmarks.tracker_speed [--frames 300] [--boxes 20 30 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from detect.structures import Classes, Result
from detect.tracking.trackers import TRACKER_CLASSES, Tracker
from detect.utils.device import device_name
from detect.utils.timing import summarize

CLASSES = Classes(["object"], [1])


def moving_boxes(rng: np.random.Generator, count: int, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Per frame, `count` 40x80 boxes moving at constant speed with 1 px jitter, each missed 1 time in 10, and
    count / 10 false positives."""
    height, width = size
    start = rng.uniform((0, 0), (width - 40, height - 80), size=(count, 2))
    velocity = rng.uniform(-3, 3, size=(count, 2))
    per_frame = []
    for frame in range(frames):
        corner = np.clip(start + velocity * frame + rng.normal(0, 1, size=(count, 2)), 0, (width - 40, height - 80))
        boxes = np.concatenate([corner, corner + (40, 80)], axis=1)[rng.random(count) > 0.1]
        noise = rng.uniform((0, 0), (width - 40, height - 80), size=(max(1, count // 10), 2))
        per_frame.append(np.concatenate([boxes, np.concatenate([noise, noise + (40, 80)], axis=1)]))
    return per_frame


def time_tracker(name: str, frames: list[np.ndarray], warmup: int, rng: np.random.Generator) -> list[float]:
    """Milliseconds of each Tracker.update after `warmup` frames."""
    tracker = Tracker(name, frame_rate=25.0)
    image = np.zeros((720, 1280, 3), dtype=np.uint8)
    times = []
    for index, boxes in enumerate(frames):
        scores = rng.uniform(0.3, 1.0, size=len(boxes)).astype(np.float32)
        result = Result(boxes.astype(np.float32), scores, np.ones(len(boxes), dtype=np.int64), CLASSES, image, index)
        start = time.perf_counter()
        tracker.update(result)
        if index >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="timed frames per tracker and box count")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--boxes", type=int, nargs="+", default=[20, 30, 40])
    parser.add_argument("--trackers", nargs="+", default=sorted(TRACKER_CLASSES), choices=sorted(TRACKER_CLASSES))
    args = parser.parse_args()
    print(f"{device_name(torch.device('cpu'))}; {args.frames} timed frames after {args.warmup}, 1280x720 frames "
          "(BoT-SORT's camera-motion compensation reads them)")
    print(f"{'tracker':<10}{'boxes':>6}{'p50 ms':>9}{'p90 ms':>9}{'max ms':>9}")
    for name in args.trackers:
        for count in args.boxes:
            rng = np.random.default_rng(count)
            frames = moving_boxes(rng, count, args.warmup + args.frames, (720, 1280))
            stats = summarize(time_tracker(name, frames, args.warmup, rng))
            print(f"{name:<10}{count:>6}{stats['p50']:>9.2f}{stats['p90']:>9.2f}{stats['max']:>9.2f}")


if __name__ == "__main__":
    main()
