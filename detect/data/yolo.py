"""Ultralytics YOLO datasets as checked COCO-format dicts: `data.yaml` (`names`, `train` / `val` image folders or
.txt lists of images, optional `path`) and one `labels/.../<image>.txt` per image beside `images/` (`class x_center
y_center width height` per line, fractions of the image; a polygon line becomes its bounding box).

supervision converts each file's checked lines to pixel boxes. Its folder reader (`DetectionDataset.from_yolo`) is
not used: it stops at the first bad line, passes label files without an image unnoticed, checks neither the class
index nor the 0..1 range and reads only the top of a folder. Here a label file with a bad line skips its image (as
Ultralytics does), counted by kind; an image without a label file, or with an empty one, is kept without boxes (a
background image, as in Ultralytics) and counted.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml
from supervision.dataset.formats.yolo import yolo_annotations_to_detections

from detect.data.checks import MESSAGES, CheckReport, check_coco, image_size
from detect.data.labels import Label, coco_dataset, image_entry
from detect.utils.errors import DetectError, first_line

IMAGE_SUFFIXES = (".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp")  # Ultralytics' list
YOLO_MESSAGES = MESSAGES | {
    "no_label_file": "images have no label file: kept without boxes (background images, as in Ultralytics)",
    "empty_label_file": "label files are empty: their images kept without boxes",
    "label_without_image": "label files have no image: skipped",
    "bad_label_line": "label files have a line that is not 'class x_center y_center width height' numbers: "
                      "their images skipped",
    "class_out_of_range": "label files name a class index that data.yaml's names do not have: their images skipped",
    "outside_image": "label files have coordinates outside 0..1 (pixels rather than fractions of the image?): "
                     "their images skipped",
}


def read_data_yaml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """data.yaml's content and its class names in index order; one line for a missing or unusable file."""
    if not path.is_file():
        raise DetectError(f"{path} does not exist; set data.root to the folder of an Ultralytics data.yaml "
                          "(names, train and val)")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DetectError(f"{path} is not YAML ({first_line(error)}); fix the file") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        names = [names[index] for index in range(len(names))]
    if not (isinstance(names, list) and names):
        raise DetectError(f"{path}: 'names' must list the class names (a list, or a dict 0: name, 1: name, ...)")
    if data.get("nc", len(names)) != len(names):
        raise DetectError(f"{path} says nc: {data['nc']} but 'names' has {len(names)} names; make them agree")
    return data, [str(name) for name in names]


def split_sources(data: dict[str, Any], yaml_path: Path, split: str) -> tuple[Path, list[Path]]:
    """The dataset's folder (data.yaml's `path`, else its own folder) and the image folders and .txt lists that
    data.yaml names for `split`, resolved as Ultralytics does."""
    if split not in data:
        raise DetectError(f"{yaml_path} has no '{split}' entry; name the {split} images there (a folder or a .txt "
                          "list) or choose the key (data.train_split / data.val_split)")
    base = yaml_path.parent / str(data.get("path") or ".")
    base = base if base.is_dir() else yaml_path.parent
    sources = []
    for entry in map(str, data[split] if isinstance(data[split], list) else [data[split]]):
        path = base / entry
        if not path.exists() and entry.startswith("../"):  # Roboflow's exports, read as Ultralytics does
            path = base / entry[3:]
        if not path.exists():
            raise DetectError(f"{yaml_path}: {split}: {entry} is not a folder or a .txt list under {base}; fix the "
                              "entry or data.yaml's 'path'")
        sources.append(path)
    return base, sources


def list_images(source: Path, base: Path) -> list[Path]:
    """Every image under a folder, or those a .txt list names (relative to the list's folder or the dataset's)."""
    if source.is_dir():
        return sorted(path for path in source.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
    lines = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    return [source.parent / line if (source.parent / line).exists() else base / line for line in lines]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, the suffix `.txt`."""
    parts = image.parts
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts = (*parts[:index], "labels", *parts[index + 1:])
    return Path(*parts).with_suffix(".txt")


def line_problem(values: list[str], num_classes: int) -> str | None:
    """The kind of problem of one label line's values, or None."""
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        return "bad_label_line"
    if len(numbers) < 5 or not all(math.isfinite(number) for number in numbers):
        return "bad_label_line"
    if not (numbers[0].is_integer() and 0 <= numbers[0] < num_classes):
        return "class_out_of_range"
    if not all(0.0 <= number <= 1.0 for number in numbers[1:]):
        return "outside_image"
    return None


def read_labels(path: Path, size: tuple[int, int], num_classes: int, report: CheckReport) -> list[Label] | None:
    """The labels of one label file in pixels ([] without the file or lines); None, counted, when a line is bad,
    so that its image is skipped."""
    if not path.is_file():
        report.add("no_label_file", str(path))
        return []
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        report.add("bad_label_line", f"{path}: not a readable text file ({type(error).__name__})")
        return None
    if not lines:
        report.add("empty_label_file", str(path))
        return []
    for number, line in enumerate(lines, start=1):
        problem = line_problem(line.split(), num_classes)
        if problem:
            report.add(problem, f"{path}:{number}: {line.strip()[:60]}")
            return None
    try:
        detections = yolo_annotations_to_detections(lines, size, with_masks=False)
    except ValueError as error:  # a line that our check lets through and supervision refuses
        report.add("bad_label_line", f"{path}: {error}")
        return None
    return [(int(class_id), [x1, y1, x2 - x1, y2 - y1], False)
            for (x1, y1, x2, y2), class_id in zip(detections.xyxy.tolist(), detections.class_id.tolist())]


def read_yolo_split(data_yaml: str | Path, split: str, on_bad_image: str = "skip") -> tuple[dict[str, Any],
                                                                                             CheckReport]:
    """`split` of an Ultralytics dataset as a COCO-format dict (file names under the dataset's folder) after
    `check_coco`, and the report of both."""
    yaml_path = Path(data_yaml)
    data, names = read_data_yaml(yaml_path)
    base, sources = split_sources(data, yaml_path, split)
    images = [image for source in sources for image in list_images(source, base)]
    if not images:
        raise DetectError(f"{yaml_path}: {split}: {data[split]} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    report = CheckReport(f"{yaml_path}:{split}", messages=YOLO_MESSAGES)
    entries, labels = [], []
    for image in images:
        size = image_size(image)
        image_labels = [] if isinstance(size, str) else read_labels(label_path(image), size, len(names), report)
        if image_labels is not None:  # an image whose file is bad goes on to check_coco, which names the problem
            entries.append(image_entry(len(entries) + 1, os.path.relpath(image, base), size))
            labels.append(image_labels)
    expected = {label_path(image) for image in images}
    for folder in (label_path(source / "_").parent for source in sources if source.is_dir()):
        for path in sorted(folder.rglob("*.txt")) if folder.is_dir() else []:
            if path not in expected and path.name != "classes.txt":  # LabelImg writes classes.txt beside its labels
                report.add("label_without_image", str(path))
    return check_coco(coco_dataset(names, entries, labels), yaml_path, base, on_bad_image, report)
