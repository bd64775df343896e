"""COCO evaluation at COCO-val2017 size: both `evaluation.backend`s timed in one run on one synthetic set (5,000
images, ~36.5k boxes, 100 detections an image, 80 classes in 12 supercategories), their 12 stats and per-class AP
compared, the error breakdown timed, and the gathering of every rank's predictions measured on 2 gloo processes.

    uv run python -m benchmarks.coco_eval [--images 5000 --detections 100 --no-gather]

The detections are the ground truth disturbed as a detector errs: boxes shifted and rescaled, some classes
confused (half within the supercategory), duplicates, objects missed, and background boxes filling every image up
to its detection count, with scores that rank hits above misses only on average.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import time
from typing import Any

import numpy as np
import torch

from benchmarks.coco_scale import cpu_flags
from benchmarks.eval_gather import measure_gather
from benchmarks.synthetic_eval import synthetic_val
from detect.analysis.coco_errors import curve_summary, error_curves
from detect.analysis.tide import tide_breakdown
from detect.evaluation.coco import BACKENDS, STAT_NAMES, evaluate_coco
from detect.utils.device import device_name


def largest_difference(a: Any, b: Any) -> float:
    """The largest difference between two evaluations' 12 stats and per-class AP / AP50 (NaN equal to NaN)."""
    pairs = [(a.stats[n], b.stats[n]) for n in STAT_NAMES]
    pairs += [(x[key], y[key]) for x, y in zip(a.per_class, b.per_class) for key in ("AP", "AP50")]
    return max(0.0 if np.isnan(x) and np.isnan(y) else abs(x - y) for x, y in pairs)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=100, help="detections an image")
    parser.add_argument("--no-gather", action="store_true", help="skip the 2-process gathering measurement")
    args = parser.parse_args()
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {device_name(torch.device('cpu'))}; "
          f"{cpu_flags()}; {os.cpu_count()} cores; load {open('/proc/loadavg').read().split()[:3]}")
    (coco, results, classes), seconds = timed(synthetic_val, args.images, args.detections)
    print(f"synthetic val: {len(coco.imgs)} images, {len(coco.anns)} boxes, {len(results)} detections "
          f"({seconds:.1f} s to make)", flush=True)
    _, deep = timed(copy.deepcopy, results)
    _, shallow = timed(lambda: [dict(record) for record in results])
    print(f"copying the results before loadRes: deep copy {deep:.2f} s, one level (now) {shallow:.2f} s")
    evaluations, seconds = {}, {}
    for backend in BACKENDS:
        evaluations[backend], seconds[backend] = timed(evaluate_coco, coco, results, classes, backend=backend)
        print(f"evaluate_coco backend={backend}: {seconds[backend]:.2f} s", flush=True)
    faster, reference = evaluations["faster"], evaluations["pycocotools"]
    print(f"speed-up {seconds['pycocotools'] / seconds['faster']:.2f}x; largest difference over the 12 stats and "
          f"{len(classes)} classes' AP and AP50: {largest_difference(faster, reference):.2e}")
    print("stats (faster / pycocotools): " + ", ".join(
        f"{n} {faster.stats[n]:.4f}/{reference.stats[n]:.4f}" for n in STAT_NAMES))
    image_ids = sorted(coco.imgs)
    # as after an evaluation: on the detections the default backend loaded (tests compare the backends' curves)
    curves, curve_seconds = timed(error_curves, coco, faster.coco_eval.cocoDt, image_ids)
    print(f"COCO error curves (faster): {curve_seconds:.2f} s; AP " + ", ".join(
        f"{k} {v:.4f}" for k, v in curve_summary(curves, classes)["AP"].items()), flush=True)
    tide, tide_seconds = timed(tide_breakdown, coco, results, image_ids)
    print(f"TIDE breakdown: {tide_seconds:.2f} s; AP50 {tide['AP50']:.4f}, dAP50 " + ", ".join(
        f"{k} {v:.4f}" for k, v in tide["dAP50"].items()), flush=True)
    if not args.no_gather:
        print(measure_gather(args.images, args.detections))
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
