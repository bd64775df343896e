"""A synthetic COCO val2017-sized ground truth and detections that err as a detector does (benchmarks.coco_eval's
set; both ranks of benchmarks.eval_gather build the same one)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from benchmarks.coco_scale import COCO_CATEGORY_IDS
from detect.structures import Classes

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
