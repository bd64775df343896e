"""The ImageNet-C corruptions (Hendrycks & Dietterich 2019) as Michaelis et al. 2019 apply them to detection images:
`imagecorruptions-imaug`, the maintained fork of bethgelab's `imagecorruptions` (same functions and severities;
it runs on today's numpy and scikit-image). Each image is corrupted with a seed of its own, so every backend and
every rerun sees the same pixels."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import cv2
import numpy as np
from imagecorruptions import corrupt, corruption_dict, get_corruption_names

from detect.utils.errors import DetectError

SEVERITIES = (1, 2, 3, 4, 5)
FAMILIES = ("common", "noise", "blur", "weather", "digital", "validation", "all")  # get_corruption_names' subsets
ALL_CORRUPTIONS = tuple(get_corruption_names("all"))  # the 15 common ones first, then the 4 validation ones


def corruption_names(keys: str | Sequence[str]) -> list[str]:
    """The corruptions named by `keys`: corruption names or family names (`common`: the 15 of the benchmark),
    in the order given, each once; an unknown name is one line."""
    names: list[str] = []
    for key in [keys] if isinstance(keys, str) else keys:
        if key in FAMILIES:
            found = get_corruption_names(key)
        elif key in corruption_dict:
            found = [key]
        else:
            raise DetectError(f"corruptions: {key!r} is neither a corruption ({', '.join(ALL_CORRUPTIONS)}) nor a "
                              f"family ({', '.join(FAMILIES)})")
        names += [name for name in found if name not in names]
    if not names:
        raise DetectError("corruptions is empty; name at least one (or `common` for the benchmark's 15)")
    return names


def check_severities(severities: Sequence[int]) -> list[int]:
    """`severities` as a sorted list of distinct levels 1..5, or one line."""
    if not severities or any(level not in SEVERITIES for level in severities):
        raise DetectError(f"severities={list(severities)}: choose levels among {list(SEVERITIES)}")
    return sorted(set(severities))


def corruption_seed(seed: int, image_id: int, corruption: str, severity: int) -> int:
    """A 32-bit seed for one image under one corruption and severity, the same in every process."""
    key = [seed, image_id, ALL_CORRUPTIONS.index(corruption), severity]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def corrupt_bgr(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """`image` (BGR, uint8, at least 32 px a side) under `corruption` at `severity`, drawn from `seed`.

    The corruptions take RGB. Most draw from numpy's global generator, which is seeded here; glass_blur (numba)
    and impulse_noise (scikit-image) take the seed as an argument."""
    if min(image.shape[:2]) < 32:
        raise DetectError(f"a {image.shape[1]}x{image.shape[0]} image is too small to corrupt: the corruptions need "
                          "32 px a side; leave such images out (max_images) or use a larger val set")
    np.random.seed(seed)
    kwargs = {"seed": seed} if "seed" in inspect.signature(corruption_dict[corruption]).parameters else {}
    rgb = corrupt(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), severity=severity, corruption_name=corruption, **kwargs)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
