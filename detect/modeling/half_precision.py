"""Half precision that keeps the boxes right. Under torch.autocast the four networks of a Faster R-CNN (ResNet + FPN,
RPN head, box head, box predictor) run in fp16 / bf16, and `float32_boxes` casts what each returns back to float32.
Anchors, box decoding, clipping, score filtering and NMS then run in float32: torchvision's `batched_nms` separates
classes by adding label x (largest coordinate + 1) to the boxes, ~1e5 for 91 classes at 800x1333, where bf16 steps
by 512 px and fp16 stops at 65504. Autocast lowers only convolutions and matrix products, and the code between the
networks has none, so autocast around the whole call (inference) or a step (Lightning's mixed precision) runs just
the networks in half precision.

The casts are forward hooks, so module names and state_dict keys stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

HALF_PRECISION_NETWORKS = ("backbone", "rpn.head", "roi_heads.box_head", "roi_heads.box_predictor")


def to_float32(value: Any) -> Any:
    """`value` with every floating-point tensor in it (dicts, lists and tuples walked) as float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, Mapping):
        return type(value)((key, to_float32(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    return value


def _float32_output(module: nn.Module, inputs: Any, output: Any) -> Any:
    return to_float32(output)


def float32_boxes(model: FasterRCNN) -> FasterRCNN:
    """`model` with the outputs of its four networks cast to float32 (see the module docstring); a no-op in fp32."""
    for name in HALF_PRECISION_NETWORKS:
        model.get_submodule(name).register_forward_hook(_float32_output)
    return model
