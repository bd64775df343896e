"""Test-time augmentation (Detectron2's GeneralizedRCNNWithTTA): each image also mirrored left-right and / or run at
other short sides, the views' boxes mapped back and merged per class.

The merge is NMS (torchvision's `batched_nms`), as Detectron2's TTA: every view's box is one a view really saw, so a
flip-equivariant detector on a mirrored image gives back exactly its plain boxes, and nothing new has to be trusted.
Weighted box fusion averages the boxes of agreeing views (often a few tenths of AP more) but rescales the scores by
how many views agree and needs a fusion step of its own (ensemble-boxes is not a dependency): a later choice.

An image and its mirror have one shape, so they go to the network in one call; each short side is one call (a batch
has one resize). A short side is set on torchvision's resize (`at_short_side`): exported graphs have theirs built in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN
from torchvision.ops import batched_nms

from detect.config import block_with
from detect.modeling.model import DetectorCall
from detect.modeling.model import DetectorOutput as Output
from detect.modeling.slicing import SliceInput, is_number, sliced, slicer
from detect.utils.errors import DetectError


@dataclass(frozen=True)
class TtaSpec:
    """Which views (configs/tta): the mirror, the short sides (empty: the model's own) and the IoU of
    the NMS that merges them."""

    flip: bool
    sizes: tuple[int, ...]
    iou: float

    def __post_init__(self) -> None:
        sizes = list(self.sizes) if isinstance(self.sizes, Sequence) else self.sizes if self.sizes is not None else []
        if not isinstance(sizes, list) or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1
                                                  for size in sizes):
            raise DetectError(f"tta.sizes={sizes} must be short sides in pixels, each >= 1 (e.g. [640,800,1000]), "
                              "or null: the model's own")
        object.__setattr__(self, "sizes", tuple(sizes))
        if not isinstance(self.flip, bool):
            raise DetectError(f"tta.flip={self.flip!r} must be true or false")
        if not is_number(self.iou) or not 0.0 < self.iou <= 1.0:
            raise DetectError(f"tta.iou={self.iou} must be in (0, 1]: the IoU at which two views' boxes are one")


TtaInput = Mapping[str, Any] | TtaSpec | None  # configs/tta's keys, a TtaSpec, or None: no augmentation


def tta_spec(settings: TtaInput) -> TtaSpec | None:
    """The TtaSpec of configs/tta with `settings` over it; None while it asks for no other view."""
    if settings is None or isinstance(settings, TtaSpec):
        return settings
    spec = TtaSpec(**block_with("infer", "tta", settings))
    return spec if spec.flip or spec.sizes else None


def check_resizable(spec: TtaSpec | None, resizable: bool) -> None:
    """One line where tta.sizes asks a backend that cannot resize (an exported graph) for other short sides."""
    if spec is not None and spec.sizes and not resizable:
        raise DetectError(f"tta.sizes={list(spec.sizes)} needs backend=torch: an exported graph resizes to the "
                          "short side it was exported with; use tta.flip alone, or backend=torch")


def at_short_side(model: FasterRCNN, call: DetectorCall, short_side: int) -> DetectorCall:
    """`call` (which runs `model`) with the model resizing images to `short_side`, its max_size scaled alike."""
    def resized(images: list[torch.Tensor]) -> list[Output]:
        transform = model.transform
        saved = transform.min_size, transform.max_size
        transform.min_size = (short_side,)
        transform.max_size = round(saved[1] * short_side / saved[0][-1])
        try:
            return call(images)
        finally:
            transform.min_size, transform.max_size = saved
    return resized


def mirrored(output: Output, width: int) -> Output:
    """An output of a mirrored image in the unmirrored image's pixels."""
    boxes = output["boxes"].clone()
    boxes[:, [0, 2]] = width - output["boxes"][:, [2, 0]]
    return {**output, "boxes": boxes}


def merged(outputs: Sequence[Output], iou: float) -> Output:
    """The views of one image as one output: per class NMS at `iou`; a single view as it is."""
    if len(outputs) == 1:
        return outputs[0]
    boxes, scores, labels = (torch.cat([output[key] for output in outputs]) for key in ("boxes", "scores", "labels"))
    keep = batched_nms(boxes.float(), scores.float(), labels, iou)
    return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}


def augmented(model: FasterRCNN, tta: TtaInput, slicing: SliceInput) -> DetectorCall | None:
    """`model` (in eval mode) with test-time augmentation and / or slicing (configs/tta, configs/slice); None with
    neither: the model alone."""
    spec, cut = tta_spec(tta), slicer(slicing)
    call = Tta(spec, model, partial(at_short_side, model, model)) if spec else model
    return sliced(cut, call) if cut else call if spec else None


class Tta:
    """A detector call that runs the views of a TtaSpec and merges them; called like the call it wraps."""

    def __init__(self, spec: TtaSpec, call: DetectorCall,
                 resized: Callable[[int], DetectorCall] | None) -> None:
        check_resizable(spec, resized is not None)
        self.spec = spec
        self.calls = [resized(size) for size in spec.sizes] if spec.sizes else [call]

    def __call__(self, images: list[torch.Tensor]) -> list[Output]:
        views = images + [image.flip(-1) for image in images] if self.spec.flip else images
        per_image: list[list[Output]] = [[] for _ in images]
        for call in self.calls:
            outputs = call(views)
            for index, image in enumerate(images):
                per_image[index].append(outputs[index])
                if self.spec.flip:
                    per_image[index].append(mirrored(outputs[len(images) + index], image.shape[-1]))
        return [merged(outputs, self.spec.iou) for outputs in per_image]
