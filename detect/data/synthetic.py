"""The built-in dataset: coloured shapes on textured backgrounds, written as COCO-format json + PNG images.

Deterministic by seed, generated once into a cache folder, so `train.py` runs offline on any machine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detect.utils.cache import cached_folder
from detect.utils.errors import DetectError, check_choice

# Category ids with a gap, as COCO's, so the id <-> contiguous label mapping is exercised by the demo too.
CATEGORIES = [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}, {"id": 4, "name": "triangle"}]
DEMO_SHAPES = tuple(category["name"] for category in CATEGORIES)
# Shapes the demo never draws: new tasks to fine-tune it on (data.shapes; docs/BENCHMARKS.md, transfer).
NEW_CATEGORIES = [{"id": 5, "name": "ring"}, {"id": 6, "name": "cross"}, {"id": 7, "name": "diamond"}]
# Each shape has its own hue range (OpenCV hue, 0-179) so colour and shape both carry the class.
HUE_RANGES = {"square": (0, 30), "disc": (60, 90), "triangle": (110, 140), "ring": (35, 55), "cross": (92, 108),
              "diamond": (145, 175)}


def draw_shape(image: np.ndarray, name: str, x: int, y: int, size: int, color: tuple[int, ...]) -> list[float]:
    """Draw one filled shape with its top-left corner at (x, y); return its tight COCO box [x, y, w, h]."""
    half, end = size // 2, size - 1
    if name == "square":
        cv2.rectangle(image, (x, y), (x + end, y + end), color, thickness=-1)
    elif name in ("disc", "ring"):
        thickness = -1 if name == "disc" else max(2, size // 6)
        cv2.circle(image, (x + half, y + half), half - max(0, thickness) // 2, color, thickness, lineType=cv2.LINE_AA)
    elif name == "cross":
        bar = max(2, size // 4)
        cv2.rectangle(image, (x + half - bar // 2, y), (x + half + bar // 2, y + end), color, thickness=-1)
        cv2.rectangle(image, (x, y + half - bar // 2), (x + end, y + half + bar // 2), color, thickness=-1)
    else:
        corners = {"triangle": [[half, 0], [0, end], [end, end]],
                   "diamond": [[half, 0], [end, half], [half, end], [0, half]]}
        points = np.array(corners[name], dtype=np.int32) + np.array([x, y], dtype=np.int32)
        cv2.fillPoly(image, [points], color, lineType=cv2.LINE_AA)
    return [float(x), float(y), float(size), float(size)]


def textured_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A BGR uint8 background: one random colour with smooth noise."""
    background = rng.integers(40, 200, size=3)
    noise = rng.normal(0, 18, size=(height // 8 + 1, width // 8 + 1, 3))
    texture = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(background + texture, 0, 255).astype(np.uint8)


def shape_color(rng: np.random.Generator, name: str) -> tuple[int, ...]:
    """A saturated BGR colour in the hue range of shape `name`."""
    hue = int(rng.integers(*HUE_RANGES[name]))
    hsv = np.uint8([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _make_image(rng: np.random.Generator, width: int, height: int, max_objects: int, object_sizes: tuple[int, int],
                categories: list[dict], frequencies: Sequence[float] | None = None,
                ) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One BGR image and its (category id, box) list of shapes of `categories`, each drawn with its probability in
    `frequencies` (None: equally likely); 1 in 10 images has no object."""
    image = textured_background(rng, width, height)
    objects = []
    count = 0 if rng.random() < 0.1 else int(rng.integers(1, max_objects + 1))
    for _ in range(count):
        index = rng.integers(len(categories)) if frequencies is None else rng.choice(len(categories), p=frequencies)
        category = categories[int(index)]
        size = int(rng.integers(object_sizes[0], min(object_sizes[1], width, height) + 1))
        x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
        color = shape_color(rng, category["name"])
        objects.append((category["id"], draw_shape(image, category["name"], x, y, size, color)))
    return image, objects


def write_split(folder: Path, split: str, rng: np.random.Generator, count: int, image_size: tuple[int, int],
                max_objects: int, object_sizes: tuple[int, int], categories: list[dict],
                frame_size: tuple[int, int] | None = None, frequencies: Sequence[float] | None = None) -> Path:
    """`count` images of shapes in folder/split and their COCO json folder/<split>.json (returned); each side drawn
    from `image_size` (min, max), or every image `frame_size` (width, height); classes as in `_make_image`."""
    (folder / split).mkdir(parents=True)
    images, annotations = [], []
    min_side, max_side = image_size
    for image_id in range(1, count + 1):
        width, height = frame_size or (int(s) for s in rng.integers(min_side, max_side + 1, size=2))
        image, objects = _make_image(rng, width, height, max_objects, object_sizes, categories, frequencies)
        file_name = f"{image_id:06d}.png"
        cv2.imwrite(str(folder / split / file_name), image)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for category_id, box in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (folder / f"{split}.json").write_text(json.dumps(coco))
    return folder / f"{split}.json"


def class_frequencies(weights: Sequence[float], shapes: Sequence[str], categories: list[dict]) -> list[float]:
    """`weights` (one a shape of `shapes`) as probabilities in the order of `categories`; bad weights: DetectError."""
    if len(weights) != len(shapes) or any(not w >= 0 for w in weights) or not sum(weights) > 0:
        raise DetectError(f"train_frequencies={list(weights)} must be {len(shapes)} weights >= 0 (one for each of "
                          f"{', '.join(shapes)}), not all 0")
    by_shape = dict(zip(shapes, weights))
    total = sum(weights)
    return [by_shape[category["name"]] / total for category in categories]


def write_synthetic_coco(cache_dir: str | Path | None = None, seed: int = 0, num_train: int = 2000,
                         num_val: int = 200, image_size: tuple[int, int] = (112, 160), max_objects: int = 4,
                         object_sizes: tuple[int, int] = (16, 56),
                         shapes: Sequence[str] = DEMO_SHAPES,
                         train_frequencies: Sequence[float] | None = None) -> dict[str, Path]:
    """Write (once) a synthetic COCO dataset and return its paths: train_json, train_images, val_json, val_images.

    `image_size` is the (min, max) of each image side; `object_sizes` the (min, max) shape side in pixels; `shapes`
    the classes drawn (names in CATEGORIES or NEW_CATEGORIES). `train_frequencies` (one weight a shape, in the
    order of `shapes`, normalised) makes the train split imbalanced; the val split always draws every class equally
    often, so a rare class has as many val boxes as any other and its AP is no noisier than theirs.
    The folder name hashes every argument, and the folder appears by an atomic rename, so parallel
    processes (DDP ranks) may call this at once.
    """
    params = dict(seed=seed, num_train=num_train, num_val=num_val, image_size=list(image_size),
                  max_objects=max_objects, object_sizes=list(object_sizes), version=1)
    known = CATEGORIES + NEW_CATEGORIES
    for shape in shapes:
        check_choice("data.shapes", shape, [category["name"] for category in known])
    categories = [category for category in known if category["name"] in shapes]
    if tuple(shapes) != DEMO_SHAPES:  # the demo's folder name stays what it was before shapes could be chosen
        params["shapes"] = list(shapes)
    frequencies = None if train_frequencies is None else class_frequencies(train_frequencies, shapes, categories)
    if frequencies is not None:  # likewise: the folder name changes only when the option is used
        params["train_frequencies"] = frequencies

    def write(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        write_split(folder, "train", rng, num_train, image_size, max_objects, object_sizes, categories,
                    frequencies=frequencies)
        write_split(folder, "val", rng, num_val, image_size, max_objects, object_sizes, categories)

    folder = cached_folder(cache_dir, "synthetic", params, "val.json", write)
    return {"train_json": folder / "train.json", "train_images": folder / "train",
            "val_json": folder / "val.json", "val_images": folder / "val"}


