"""How long the set-up data checks take: a COCO file of N images (links to one real JPEG and one PNG, 7 boxes each)
read by `read_coco` with its image checks, against the same file indexed by plain pycocotools.

    uv run python -m benchmarks.data_checks [--images 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO

from detect.data.coco import read_coco


def write_links(folder: Path, count: int) -> Path:
    """`count` image entries, every other one a link to a 640x480 JPEG, the others to a PNG; their json."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "real.jpg"), pixels)
    cv2.imwrite(str(folder / "real.png"), pixels)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        suffix = ".jpg" if image_id % 2 else ".png"
        (folder / f"{image_id:06d}{suffix}").symlink_to(folder / f"real{suffix}")
        images.append({"id": image_id, "file_name": f"{image_id:06d}{suffix}", "width": 640, "height": 480})
        annotations += [{"id": len(annotations) + 1, "image_id": image_id, "category_id": 1 + k % 3,
                         "bbox": [10.0 * k, 20.0, 50.0, 60.0], "area": 3000.0, "iscrowd": 0} for k in range(7)]
    path = folder / "annotations.json"
    categories = [{"id": i, "name": f"class {i}"} for i in (1, 2, 3)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_links(folder, args.images)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            COCO(str(path))
        plain_s = time.perf_counter() - start
        start = time.perf_counter()
        _, report = read_coco(path, folder, on_bad_image="error")
        checked_s = time.perf_counter() - start
    per_10k = 10000 / args.images
    print(f"{args.images} images, {7 * args.images} boxes (links to one 640x480 JPEG and one PNG)")
    print(f"pycocotools COCO() alone        {plain_s:7.2f} s  ({plain_s * per_10k:.2f} s per 10k images)")
    print(f"read_coco with every check      {checked_s:7.2f} s  ({checked_s * per_10k:.2f} s per 10k images); "
          f"problems found: {sum(report.counts.values())}")


if __name__ == "__main__":
    main()
