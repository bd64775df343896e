"""The images `Detector.__call__` takes: a path (read with OpenCV) or a numpy array, as HxWx3 uint8 BGR."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from detect.utils.errors import DetectError

ImageInput = str | Path | np.ndarray


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A uint8 array as HxWx3 BGR: grayscale (HxW or HxWx1) repeated into three channels, BGRA without its alpha
    (as OpenCV's imread with IMREAD_COLOR reads such files); an empty or other array is one line."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DetectError(f"an image array must be uint8 BGR (HxWx3, OpenCV's), grayscale (HxW) or BGRA (HxWx4); "
                          f"got {image.dtype} {image.shape}")
    if image.size == 0:
        raise DetectError(f"the image array is empty (shape {image.shape}); pass an image with pixels")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def read_image(image: ImageInput) -> tuple[np.ndarray, str, float]:
    """(BGR pixels, name, decode ms) of an image path or array."""
    if isinstance(image, np.ndarray):
        return as_bgr(image), "array", 0.0
    start = time.perf_counter()
    pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if pixels is None:
        problem = "does not exist" if not Path(image).exists() else "is not an image OpenCV reads"
        raise DetectError(f"image {image} {problem}; pass a jpg/png/... file or a BGR numpy array")
    return pixels, Path(image).name, (time.perf_counter() - start) * 1000.0
