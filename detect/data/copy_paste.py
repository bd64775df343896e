"""Copy-paste within a training batch (data.copy_paste), torchvision's SimpleCopyPaste with boxes for masks: each
image receives a random half of the objects of the next image in the batch, pasted as rectangles."""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms.v2 import functional as F

from detect.data.samplers import collate

MAX_HIDDEN = 0.7  # an image's own box hidden by pasted rectangles over more than this fraction of its area is dropped

Sample = tuple[torch.Tensor, dict[str, Any]]


def paste(image: torch.Tensor, target: dict[str, Any], source: torch.Tensor,
          source_target: dict[str, Any]) -> Sample:
    """`image` with a random half (at least one) of `source`'s boxes pasted onto it, `source` resized to its size
    first; its own boxes hidden over more than MAX_HIDDEN of their area dropped and counted in target["dropped"]."""
    height, width = image.shape[-2:]
    chosen = torch.rand(len(source_target["boxes"])) < 0.5
    if len(chosen) and not chosen.any():
        chosen[torch.randint(len(chosen), (1,))] = True
    scale = torch.tensor([width / source.shape[-1], height / source.shape[-2]] * 2)
    boxes = (source_target["boxes"][chosen] * scale).round().clamp(min=0)
    boxes = torch.minimum(boxes, torch.tensor([width, height, width, height], dtype=boxes.dtype))
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    boxes, labels = boxes[keep], source_target["labels"][chosen][keep]
    if not len(boxes):
        return image, target
    resized = F.resize(source, [height, width], antialias=True)
    image, pasted = image.clone(), torch.zeros(height, width, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.long().tolist():
        image[:, y1:y2, x1:x2] = resized[:, y1:y2, x1:x2]
        pasted[y1:y2, x1:x2] = True
    own = target["boxes"]
    hidden = torch.tensor([pasted[int(y1):max(int(y1) + 1, int(y2)), int(x1):max(int(x1) + 1, int(x2))].float().mean()
                           for x1, y1, x2, y2 in own.tolist()])
    visible = hidden <= MAX_HIDDEN if len(own) else torch.zeros(0, dtype=torch.bool)
    target = {**target, "boxes": torch.cat([own[visible], boxes.to(own.dtype)]),
              "labels": torch.cat([target["labels"][visible], labels]),
              "dropped": target.get("dropped", 0) + int((~visible).sum())}
    return image, target


def copy_paste_collate(batch: list[Sample]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """`collate` after pasting into each image objects of the next one (the last from the first)."""
    if len(batch) < 2:
        return collate(batch)
    return collate([paste(*batch[index], *batch[(index + 1) % len(batch)]) for index in range(len(batch))])
