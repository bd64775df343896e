"""Checks of a COCO-format annotation file and its images at set-up, before any training: what labelling tools and
scripts in the wild write (unknown category ids, annotations of images that do not exist, no `area` or `iscrowd`,
file names with folder parts, files that are not images or are truncated, sizes that differ from the json).

Each problem is one readable error, or a fix or a skip that is counted and reported in the run's header. Images are
checked from their headers and last bytes (no decoding). `on_bad_image` chooses what a missing, unreadable,
truncated or wrongly sized image does: `skip` it (and its annotations), or stop with an `error`.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from detect.utils.errors import DetectError, check_choice

BAD_IMAGE_POLICIES = ("skip", "error")
_JPEG_END, _PNG_END = b"\xff\xd9", b"IEND\xaeB`\x82"


@dataclass
class CheckReport:
    """What the checks fixed, skipped and noticed in one annotation file, for the run's header."""

    path: str
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first case of each kind, for the message
    messages: dict[str, str] = field(default_factory=lambda: MESSAGES)  # a label format adds its own kinds

    def add(self, kind: str, example: str, count: int = 1) -> None:
        self.counts[kind] += count
        self.examples.setdefault(kind, example)

    def lines(self) -> list[str]:
        """One line per kind of problem: how many, what was done, the first case."""
        return [f"{Path(self.path).name}: {count} {self.messages[kind]} (first: {self.examples[kind]})"
                for kind, count in sorted(self.counts.items())]


MESSAGES = {
    "unknown_category": "annotations name a category id that is not in 'categories': skipped",
    "unknown_image": "annotations point at an image id that is not in 'images': skipped",
    "bad_bbox": "annotations have no bbox of 4 finite numbers: skipped",
    "filled_area": "annotations had no 'area': filled with the box area (as Detectron2 does)",
    "filled_iscrowd": "annotations had no 'iscrowd': set to 0 (as Detectron2 does)",
    "unused_category": "categories have no annotation (kept, they score -1 in COCOeval)",
    "folder_in_file_name": "file names with folder parts were found by their base name in the image folder",
    "filled_size": "images had no 'width' / 'height': read from the file's header",
    "bad_image": "images are missing, not images, truncated or of another size than the json says: skipped",
}


def image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the file's header, or what is wrong with it. JPEG and PNG must also end properly."""
    try:
        with open(path, "rb") as file:
            head = file.read(32)
            file.seek(-8, 2) if path.stat().st_size >= 8 else file.seek(0)
            tail = file.read()
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return struct.unpack(">II", head[16:24]) if tail.endswith(_PNG_END) else "a truncated PNG"
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(path) if tail.rstrip(b"\x00").endswith(_JPEG_END) else "a truncated JPEG"
    try:  # other formats (BMP, TIFF, WebP): Pillow reads the header only
        with Image.open(path) as image:
            return image.size
    except Exception:  # Pillow raises several types for a file that is no image
        return "not an image"


def _jpeg_size(path: Path) -> tuple[int, int] | str:
    """Width and height from a JPEG's header (Pillow reads no pixels), turned by its EXIF orientation as OpenCV
    decodes it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:
        return "not an image"
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _resolve(image_dir: Path, file_name: str, report: CheckReport) -> Path:
    path = image_dir / file_name
    if not path.is_file() and Path(file_name).name != file_name and (image_dir / Path(file_name).name).is_file():
        report.add("folder_in_file_name", file_name)
        return image_dir / Path(file_name).name
    return path


def check_coco(dataset: dict[str, Any], path: str | Path, image_dir: str | Path | None,
               on_bad_image: str = "skip", report: CheckReport | None = None) -> tuple[dict[str, Any], CheckReport]:
    """The dataset with bad annotations and (by `on_bad_image`) bad images left out and missing fields filled,
    and the report (added to `report`, a label format's, when given). Structural problems (duplicate ids, no
    categories, no usable image) raise a DetectError naming the file."""
    check_choice("data.on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)
    report = report or CheckReport(str(path))
    for key in ("images", "categories"):
        ids = [item.get("id") for item in dataset[key]]
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        if duplicates or None in ids:
            what = f"duplicate ids {duplicates[:5]}" if duplicates else "an entry without id"
            raise DetectError(f"annotation file {path}: '{key}' has {what}; every image and category needs its own id")
    if not dataset["categories"]:
        raise DetectError(f"annotation file {path} has no 'categories'; list the classes with their ids and names")

    images = {}
    for image in dataset["images"]:
        if image_dir is None:
            images[image["id"]] = image
            continue
        problem = _image_problem(image, Path(image_dir), report)
        if problem is None:
            images[image["id"]] = image
        elif on_bad_image == "error":
            raise DetectError(f"image {image.get('file_name')} (id {image['id']}) of {path} is {problem}; fix or "
                              "remove it, or set data.on_bad_image=skip to leave such images out")
        else:
            report.add("bad_image", f"{image.get('file_name')}: {problem}")
    if image_dir is not None and not images and report.counts["bad_image"]:
        raise DetectError(f"none of the {report.counts['bad_image']} images of {path} is usable "
                          f"({report.examples['bad_image']}); check the image folder {image_dir}")

    category_ids = {category["id"] for category in dataset["categories"]}
    known_ids = {image["id"] for image in dataset["images"]}
    annotations = []
    for ann in dataset["annotations"]:
        where = f"annotation id {ann.get('id')}"
        bbox = ann.get("bbox")
        if ann.get("category_id") not in category_ids:
            report.add("unknown_category", f"{where}, category_id {ann.get('category_id')}")
        elif ann.get("image_id") not in known_ids:
            report.add("unknown_image", f"{where}, image_id {ann.get('image_id')}")
        elif not (isinstance(bbox, list) and len(bbox) == 4
                  and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
            report.add("bad_bbox", f"{where}, bbox {bbox}")
        elif ann["image_id"] in images:  # a skipped image's annotations go with it
            if "area" not in ann:
                ann = ann | {"area": float(bbox[2] * bbox[3])}
                report.add("filled_area", where)
            if "iscrowd" not in ann:
                ann = ann | {"iscrowd": 0}
                report.add("filled_iscrowd", where)
            annotations.append(ann)
    used = {ann["category_id"] for ann in annotations}
    for category in dataset["categories"]:
        if category["id"] not in used:
            report.add("unused_category", f"{category.get('name')} (id {category['id']})")
    cleaned = dataset | {"images": list(images.values()), "annotations": annotations}
    return cleaned, report


def _image_problem(image: dict[str, Any], image_dir: Path, report: CheckReport) -> str | None:
    """What is wrong with one image entry and its file, or None; resolves file names with folder parts."""
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
        return "an entry without file_name"
    path = _resolve(image_dir, image["file_name"], report)
    if not path.is_file():
        return f"missing from {image_dir}"
    size = image_size(path)
    if isinstance(size, str):
        return size
    expected = (image.get("width"), image.get("height"))
    if expected == (None, None):
        image["width"], image["height"] = size
        report.add("filled_size", image["file_name"])
    elif expected != tuple(size):
        return f"{size[0]}x{size[1]} pixels but the json says {expected[0]}x{expected[1]}"
    image["file_name"] = str(path.relative_to(image_dir))
    return None
