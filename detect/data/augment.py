"""Training augmentation presets (data.augment), after torchvision's detection references, on transforms.v2: the
boxes move with the image, and boxes left without area by a crop are dropped with their labels, and counted."""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from detect.utils.errors import DetectError, check_choice

AUGMENTS = ("hflip", "ssd", "lsj")
MEAN_FILL = (124, 116, 104)  # ImageNet's mean colour: what SSD's zoom-out fills the canvas with
LSJ_SCALES = (0.1, 2.0)  # large-scale jitter's range of scales of the crop size (Ghiasi et al.)


def check_augment(augment: str, crop_size: int | None, copy_paste: bool = False, max_size: int | None = None) -> None:
    """data.augment, data.crop_size of lsj (at most the model's `max_size` when given) and data.copy_paste, or a
    DetectError naming the bad key."""
    check_choice("data.augment", augment, AUGMENTS)
    if not isinstance(copy_paste, bool):
        raise DetectError(f"data.copy_paste={copy_paste} must be true or false")
    too_large = max_size is not None and isinstance(crop_size, int) and crop_size > max_size
    if augment == "lsj" and (not isinstance(crop_size, int) or crop_size < 1 or too_large):
        bound = f" and at most model.max_size={max_size} (the model resizes a larger crop down to it)" if max_size \
            else ""
        raise DetectError(f"data.crop_size={crop_size} must be a side in pixels >= 1{bound} for data.augment=lsj")


class CountDropped:
    """`transforms`, then the number of boxes they dropped as target["dropped"] (DetectionModule logs it as
    train/boxes_dropped)."""

    def __init__(self, transforms: v2.Transform) -> None:
        self.transforms = transforms

    def __call__(self, image: torch.Tensor, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        count = len(target["boxes"])
        image, target = self.transforms(image, target)
        target["dropped"] = count - len(target["boxes"])
        return image, target


def train_transforms(flip_prob: float, photometric: bool, augment: str = "hflip",
                     crop_size: int | None = None) -> v2.Compose | CountDropped:
    """The preset `augment`, then the flip and optional colour jitter:
    hflip: nothing more (multi-scale training is the model's: a list of `model.min_size`);
    ssd: SSD's photometric distortion, zoom-out onto a mean-filled canvas up to 4x and IoU-constrained crop;
    lsj: large-scale jitter: a random scale of a `crop_size` square (0.1 to 2), cropped or padded to that square.
    The crops of ssd and lsj count the boxes they drop (`CountDropped`)."""
    steps: list[v2.Transform] = []
    if augment == "ssd":
        steps += [v2.RandomPhotometricDistort(p=0.5), v2.RandomZoomOut(fill={tv_tensors.Image: MEAN_FILL, "others": 0}),
                  v2.RandomIoUCrop()]
    elif augment == "lsj":
        steps += [v2.ScaleJitter((crop_size, crop_size), scale_range=LSJ_SCALES),
                  v2.RandomCrop((crop_size, crop_size), pad_if_needed=True)]
    steps.append(v2.RandomHorizontalFlip(flip_prob))
    if photometric:
        steps.append(v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02))
    steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    return v2.Compose(steps) if augment == "hflip" else CountDropped(v2.Compose(steps))  # flips drop no box
