"""Sliced inference (SAHI's recipe): each frame cut into overlapping slices, plus the whole frame; the slices go to the
detector in one call (the whole frame in a second: a batch pads its images to the largest), their boxes are shifted
back to the frame and merged per class. Each slice is resized by the
network to its own input size, so a small object is seen magnified.

`Slicer.split` turns frames into the passes to run, `Slicer.join` turns the passes' outputs back into one output a
frame; both work on what any detector call takes and returns (a list of 3xHxW tensors -> boxes, labels, scores): the
Detector (`detect.inference`) times them as a stage of their own, and here, below `detect.engine`, evaluation can
use them too.

Neither supervision's `InferenceSlicer` nor sahi fits: InferenceSlicer calls back once per slice (no batch: N network
calls a frame, on numpy arrays on the host) and merges with its own NMS / NMM on `sv.Detections`, and sahi (not a
dependency) wraps a model per slice too. What is written here is the small part: the slice grid, the shift, and greedy
non-maximum merging (SAHI's GREEDYNMM: a box absorbs the lower-scored boxes of its class that overlap it by their
intersection over the smaller box, and becomes the box enclosing them); NMS is torchvision's `batched_nms` on IoU.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.ops import batched_nms, box_area

from detect.config import block_with
from detect.modeling.model import DetectorCall
from detect.modeling.model import DetectorOutput as Output
from detect.utils.errors import DetectError, check_choice

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
MERGES = ("nmm", "nms")


@dataclass(frozen=True)
class SliceSpec:
    """How frames are sliced (configs/slice): slice height and width, the overlap of neighbours as a
    fraction of the slice, whether the whole frame is a pass too, and how the passes' boxes are merged."""

    size: tuple[int, int]
    overlap: float
    full_frame: bool
    merge: str
    iou: float

    def __post_init__(self) -> None:
        size = list(self.size) if isinstance(self.size, Sequence) and not isinstance(self.size, str) else self.size
        if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v >= 1 for v in size):
            raise DetectError(f"slice.size={size} must be a slice height and width in pixels, both >= 1, "
                              "e.g. slice.size=[512,512]")
        object.__setattr__(self, "size", tuple(size))
        if not is_number(self.overlap) or not 0.0 <= self.overlap < 1.0:
            raise DetectError(f"slice.overlap={self.overlap} must be in [0, 1): the fraction of a slice its "
                              "neighbour overlaps")
        check_choice("slice.merge", self.merge, MERGES)
        if not isinstance(self.full_frame, bool):
            raise DetectError(f"slice.full_frame={self.full_frame!r} must be true or false")
        if not is_number(self.iou) or not 0.0 < self.iou <= 1.0:
            raise DetectError(f"slice.iou={self.iou} must be in (0, 1]: the overlap at which two boxes are one object")


SliceInput = Mapping[str, Any] | SliceSpec | None  # configs/slice's keys, a SliceSpec, or None: no slicing


def is_number(value: object) -> bool:
    """An int or a float, not a bool (a config value that should be a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def starts(length: int, size: int, overlap: float) -> list[int]:
    """Where the slices of `size` along a side of `length` start: a step of size x (1 - overlap), the last one flush
    with the far edge; one slice at 0 when the side is no longer than the slice."""
    if size >= length:
        return [0]
    step = max(1, round(size * (1.0 - overlap)))
    return [*range(0, length - size, step), length - size]


def windows(height: int, width: int, spec: SliceSpec) -> list[Window]:
    """The passes of an HxW frame: the slices row by row, then the whole frame with `full_frame` unless one slice
    already is the whole frame."""
    slice_h, slice_w = min(spec.size[0], height), min(spec.size[1], width)
    found = [(x, y, x + slice_w, y + slice_h) for y in starts(height, slice_h, spec.overlap)
             for x in starts(width, slice_w, spec.overlap)]
    whole = (0, 0, width, height)
    return found + [whole] if spec.full_frame and found != [whole] else found


def intersection_over_smaller(boxes: torch.Tensor) -> torch.Tensor:
    """NxN intersection of each pair of xyxy boxes over the smaller box's area (1 where one holds the other)."""
    top_left = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = box_area(boxes)
    return inter / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-9)


def greedy_nmm(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> Output:
    """SAHI's greedy non-maximum merging: by descending score, a box absorbs every box of its class not yet absorbed
    whose intersection over the smaller box is at least `threshold`, and becomes the box enclosing them, with its own
    score. Of equal scores the larger box leads (it holds the parts the others saw). The loop runs on the host (a
    GPU would synchronize at every box)."""
    boxes, scores, labels = boxes.cpu(), scores.cpu(), labels.cpu()
    by_area = box_area(boxes).argsort(descending=True)
    order = by_area[scores[by_area].argsort(descending=True, stable=True)]
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    matches = (intersection_over_smaller(boxes) >= threshold) & (labels[:, None] == labels[None, :])
    taken = torch.zeros(len(boxes), dtype=torch.bool)
    kept, merged = [], []
    for index in range(len(boxes)):
        if taken[index]:
            continue
        group = matches[index] & ~taken
        group[index] = True
        taken |= group
        kept.append(index)
        members = boxes[group]
        merged.append(torch.cat([members[:, :2].min(dim=0).values, members[:, 2:].max(dim=0).values]))
    kept_index = torch.tensor(kept, dtype=torch.long)
    return {"boxes": torch.stack(merged) if merged else boxes[:0], "labels": labels[kept_index],
            "scores": scores[kept_index]}


def merge(outputs: Sequence[Output], shifts: Sequence[Window], spec: SliceSpec) -> Output:
    """The passes of one frame as one output: boxes shifted by their window's origin, merged per class."""
    boxes = torch.cat([output["boxes"] + output["boxes"].new_tensor(shift[:2] * 2)
                       for output, shift in zip(outputs, shifts, strict=True)])
    scores = torch.cat([output["scores"] for output in outputs])
    labels = torch.cat([output["labels"] for output in outputs])
    if spec.merge == "nms":
        keep = batched_nms(boxes.float(), scores.float(), labels, spec.iou)
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}
    return greedy_nmm(boxes, scores, labels, spec.iou)


@dataclass
class Plan:
    """What `Slicer.split` sent: per pass the frame it came from and its window."""

    frames: list[int]
    windows: list[Window]
    count: int  # frames


class Slicer:
    """Cuts frames into the passes of a SliceSpec and merges the passes' outputs back, one output a frame. A frame no
    larger than a slice is one pass, said once per frame size."""

    def __init__(self, spec: SliceSpec) -> None:
        self.spec = spec
        self._said: set[tuple[int, int]] = set()

    def split(self, images: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], Plan]:
        """The passes of every image (3xHxW), in one list for one call of the detector, and the plan to join them."""
        passes, plan = [], Plan([], [], len(images))
        for index, image in enumerate(images):
            height, width = image.shape[-2:]
            self._say_if_larger(height, width)
            for window in windows(height, width, self.spec):
                x0, y0, x1, y1 = window
                passes.append(image[:, y0:y1, x0:x1].contiguous())
                plan.frames.append(index)
                plan.windows.append(window)
        return passes, plan

    def join(self, outputs: Sequence[Output], plan: Plan) -> list[Output]:
        """One output a frame: a frame of one pass keeps its output as it is, the others are merged."""
        joined = []
        for index in range(plan.count):
            mine = [i for i, frame in enumerate(plan.frames) if frame == index]
            if len(mine) == 1:
                joined.append(outputs[mine[0]])
            else:
                joined.append(merge([outputs[i] for i in mine], [plan.windows[i] for i in mine], self.spec))
        return joined

    def _say_if_larger(self, height: int, width: int) -> None:
        if (height, width) in self._said or (self.spec.size[0] < height and self.spec.size[1] < width):
            return
        self._said.add((height, width))
        passes = "one pass of the whole frame" if self.spec.size[0] >= height and self.spec.size[1] >= width else \
            "slices cut to the frame on that side"
        print(f"note: slice.size={list(self.spec.size)} is not smaller than the {height}x{width} frame: {passes}",
              file=sys.stderr, flush=True)


def sliced(cut: Slicer, call: DetectorCall) -> DetectorCall:
    """`call` run on the slices of its images, one merged output an image (evaluation; the Detector times the steps)."""
    def run(images: list[torch.Tensor]) -> list[Output]:
        passes, plan = cut.split(images)
        return cut.join(call_by_shape(call, passes), plan)
    return run


def call_by_shape(call: DetectorCall, images: Sequence[torch.Tensor]) -> list[Output]:
    """`call` once per distinct image shape (a batch pads its images to the largest: slices are not padded to the
    whole frame), the outputs in the images' order."""
    shapes: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        shapes.setdefault(tuple(image.shape), []).append(index)
    outputs: list[Output | None] = [None] * len(images)
    for indices in shapes.values():
        for index, output in zip(indices, call([images[i] for i in indices]), strict=True):
            outputs[index] = output
    return outputs


def slice_spec(settings: SliceInput) -> SliceSpec | None:
    """The SliceSpec of configs/slice with `settings` (e.g. {"size": [512, 512]}) over it; None (no
    slicing) while slice.size is null."""
    if settings is None or isinstance(settings, SliceSpec):
        return settings
    block = block_with("infer", "slice", settings)
    return SliceSpec(**block) if block["size"] is not None else None


def slicer(settings: SliceInput, batch: bool = True) -> Slicer | None:
    """The Slicer of `settings` (see `slice_spec`), or one line where the backend is called an image at a time."""
    spec = slice_spec(settings)
    if spec is not None and not batch:
        raise DetectError("slice.size is set with batch=false: the slices of a frame go to the backend in one call; "
                          "set batch=true, or slice.size=null")
    return Slicer(spec) if spec is not None else None
