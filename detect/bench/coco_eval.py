"""COCO evaluation at COCO-val2017 size: both `evaluation.backend`s timed in one run on one synthetic set (5,000
images, ~36.5k boxes, 100 detections an image, 80 classes in 12 supercategories), their 12 stats and per-class AP
compared, the error breakdown timed, and the gathering of every rank's predictions measured on 2 gloo processes.

    uv run python -m detect.bench.coco_eval [--images 5000 --detections 100 --no-gather]

The detections are the ground truth disturbed as a detector errs: boxes shifted and rescaled, some classes
confused (half within the supercategory), duplicates, objects missed, and background boxes filling every image up
to its detection count, with scores that rank hits above misses only on average.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import os
import time
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from detect.analysis.coco_errors import curve_summary, error_curves
from detect.analysis.tide import tide_breakdown
from detect.bench.coco_scale import COCO_CATEGORY_IDS, cpu_flags
from detect.bench.eval_gather import measure_gather
from detect.evaluation import BACKENDS, STAT_NAMES, evaluate_coco
from detect.inference.summary import device_name
from detect.model import Classes

SIZE = (640, 480)  # (width, height), COCO's most common
SUPERCATEGORIES = 12


def synthetic_val(num_images: int, detections: int = 100, boxes_per_image: float = 7.3,
                  seed: int = 0) -> tuple[COCO, list[dict[str, Any]], Classes]:
    """A COCO ground truth (sizes log-uniform 6-400 px: small, medium and large; 1 % crowd) and `detections`
    detections an image, as described above; the classes (names "class <id>") come with them."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    counts = rng.poisson(boxes_per_image, num_images)
    owner = np.repeat(np.arange(1, num_images + 1), counts)
    n = len(owner)
    wh = np.exp(rng.uniform(np.log(6), np.log(400), (n, 2)))
    wh = np.minimum(wh, [width - 1, height - 1])
    xy = rng.uniform(0, 1, (n, 2)) * ([width, height] - wh)
    category = rng.choice(COCO_CATEGORY_IDS, n)
    crowd = rng.random(n) < 0.01
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": width, "height": height}
              for i in range(1, num_images + 1)]
    annotations = [{"id": k + 1, "image_id": int(i), "category_id": int(c), "bbox": [*map(float, p), *map(float, s)],
                    "area": float(s[0] * s[1]), "iscrowd": int(z)}
                   for k, (i, c, p, s, z) in enumerate(zip(owner, category, xy.round(2), wh.round(2), crowd))]
    categories = [{"id": c, "name": f"class {c}", "supercategory": f"group {k % SUPERCATEGORIES}"}
                  for k, c in enumerate(COCO_CATEGORY_IDS)]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    results = _detections(rng, owner, category, xy, wh, crowd, num_images, detections)
    return coco, results, Classes([c["name"] for c in categories], list(COCO_CATEGORY_IDS))


def _detections(rng: np.random.Generator, owner: np.ndarray, category: np.ndarray, xy: np.ndarray, wh: np.ndarray,
                crowd: np.ndarray, num_images: int, per_image: int) -> list[dict[str, Any]]:
    """Found objects (85 %, shifted and rescaled by ~10 %, classes confused 10 %), duplicates (10 %), then
    background boxes up to `per_image` an image; each image keeps its `per_image` best scores."""
    found = ~crowd & (rng.random(len(owner)) < 0.85)
    twice = found & (rng.random(len(owner)) < 0.10)
    index = np.concatenate([np.flatnonzero(found), np.flatnonzero(twice)])
    size = wh[index] * np.exp(rng.normal(0, 0.1, (len(index), 2)))
    corner = xy[index] + rng.normal(0, 0.1, (len(index), 2)) * wh[index]
    label = category[index].copy()
    confused = rng.random(len(index)) < 0.10
    supergroup = np.array([COCO_CATEGORY_IDS.index(c) % SUPERCATEGORIES for c in label])
    same_group = [np.array(COCO_CATEGORY_IDS)[np.arange(len(COCO_CATEGORY_IDS)) % SUPERCATEGORIES == g]
                  for g in range(SUPERCATEGORIES)]
    for k in np.flatnonzero(confused):
        pool = same_group[supergroup[k]] if rng.random() < 0.5 else COCO_CATEGORY_IDS
        label[k] = rng.choice(pool)
    score = rng.beta(5, 2, len(index)) * np.where(np.arange(len(index)) >= found.sum(), 0.8, 1.0)
    background = num_images * per_image
    image = np.concatenate([owner[index], rng.integers(1, num_images + 1, background)])
    size = np.concatenate([size, np.exp(rng.uniform(np.log(6), np.log(300), (background, 2)))])
    corner = np.concatenate([corner, rng.uniform(0, 1, (background, 2)) * (np.array(SIZE) - size[-background:])])
    label = np.concatenate([label, rng.choice(COCO_CATEGORY_IDS, background)])
    score = np.concatenate([score, rng.beta(1.5, 5, background)])
    order = np.lexsort((-score, image))  # by image, best score first
    rank = np.arange(len(order)) - np.searchsorted(image[order], image[order])  # place within its image
    keep = order[rank < per_image]
    return [{"image_id": int(i), "category_id": int(c), "bbox": [round(float(v), 2) for v in (*p, *s)],
             "score": round(float(v), 4)}
            for i, c, p, s, v in zip(image[keep], label[keep], corner[keep], size[keep], score[keep])]


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
