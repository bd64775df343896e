"""Real images for an export: to calibrate int8 on and to check parity on. By default a checkpoint's own run
gives them (its training images to calibrate, its val images to check); otherwise a folder, a glob or a video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import OmegaConf

from detect.config import instantiate_node
from detect.data.datamodule import DetectionDataModule
from detect.data.sources.reader import FrameReader
from detect.utils.errors import DetectError

SPLITS = ("train", "val")


def run_datamodule(weights: str | Path) -> DetectionDataModule:
    """The data module a checkpoint of train.py was trained with, as its run's `.hydra/config.yaml` says
    (<run>/checkpoints/<name>.ckpt); no split is read yet."""
    run_config = Path(weights).resolve().parent.parent / ".hydra" / "config.yaml"
    if not run_config.is_file():
        raise DetectError(f"{weights} is not inside a train.py run (no {run_config}); pass the images to use "
                          "(a folder, a glob or a video)")
    return instantiate_node(OmegaConf.load(run_config).data)  # checks that the files are still there


def run_split(weights: str | Path, split: str) -> tuple[dict[str, Any], Path]:
    """(checked COCO-format dict, image folder) of the `split` a checkpoint of train.py was trained or evaluated on,
    in any label format."""
    data = run_datamodule(weights)
    return data.reader(split)()[0], data.image_dir(split)


def read_images(entries: list[dict[str, Any]], image_dir: Path) -> list[np.ndarray]:
    """The images (BGR) of COCO image entries, in their order."""
    images = []
    for entry in entries:
        image = cv2.imread(str(Path(image_dir) / entry["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise DetectError(f"image {Path(image_dir) / entry['file_name']} could not be read")
        images.append(image)
    return images


def split_images(dataset: dict[str, Any], image_dir: Path, count: int) -> list[np.ndarray]:
    """The first `count` images (BGR) of a checked COCO-format dict, in its order."""
    return read_images(dataset["images"][:count], image_dir)


def _every_nth(source: str | Path, stride: int, count: int) -> list[np.ndarray]:
    """Every `stride`-th frame of `source`, up to `count` of them."""
    reader = FrameReader(str(source), vid_stride=stride)
    try:
        return [frame.image for _, frame in zip(range(count), reader)]
    finally:
        reader.close()


def source_images(source: str | Path, count: int) -> list[np.ndarray]:
    """Up to `count` images (BGR) of a folder, a glob or a video, spread evenly over a video's frames.

    A video's header may count more frames than decode (vtest.avi: 682 and 341): when the spacing it gives runs past
    the end, the frames are counted by decoding and the spacing is taken from that count.
    """
    probe = FrameReader(str(source), queue_size=1)
    header_count = probe.frame_count
    probe.close()
    stride = max(1, (header_count or count) // count)
    images = _every_nth(source, stride, count)
    if len(images) < count and stride > 1:
        reader = FrameReader(str(source))
        decodable = sum(1 for _ in reader)
        reader.close()
        images = _every_nth(source, max(1, decodable // count), count)
    if not images:
        raise DetectError(f"{source} gave no image")
    return images


def export_images(source: str | Path | None, weights: str | Path | None, split: str, count: int) -> list[np.ndarray]:
    """`count` images of `source`, or of the checkpoint's `split` when `source` is None."""
    return labelled_images(source, weights, split, count)[0]


def labelled_images(source: str | Path | None, weights: str | Path | None, split: str,
                    count: int) -> tuple[list[np.ndarray], dict[str, Any] | None]:
    """`export_images`, with the COCO-format dict of those images and their boxes when they come from the
    checkpoint's split (a folder, a glob or a video has no labels: None)."""
    if source is not None:
        return source_images(source, count), None
    if weights is None:
        raise DetectError("random weights have no training run to take images from; pass images "
                          "(a folder, a glob or a video)")
    dataset, image_dir = run_split(weights, split)
    entries = dataset["images"][:count]
    ids = {entry["id"] for entry in entries}
    labels = {**dataset, "images": entries,
              "annotations": [ann for ann in dataset["annotations"] if ann["image_id"] in ids]}
    return read_images(entries, image_dir), labels
