"""A trained checkpoint with its K classes moved to the last K of N outputs (COCO's 91 by default), the other outputs
never scoring: the same detections, under labels near N. torchvision's `batched_nms` moves each class apart by
label x (largest coordinate + 1), so these labels are where a box decoding or an NMS in half precision breaks (the
format table's many-class rows, detect/bench/formats.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from detect.modeling.checkpoint import (
    DETECTOR_PREFIX,
    detector_metadata,
    read_checkpoint,
    save_atomically,
    split_detector_checkpoint,
)
from detect.modeling.weights import PREDICTOR_PREFIX, PREDICTOR_ROWS
from detect.utils.errors import DetectError

NEVER_LOGIT = -1e4  # the logit of an unused output: softmax gives it exactly 0 in fp32, bf16 and fp16


def many_class_checkpoint(weights: str | Path, outputs: int, path: str | Path) -> Path:
    """Write to `path` the checkpoint of train.py `weights` with its classes as the last of `outputs` outputs
    (background included); unused outputs are named "unused <label>" with category ids past the dataset's."""
    state_dict, meta, _ = split_detector_checkpoint(read_checkpoint(weights))
    if "class_names" not in meta:
        raise DetectError(f"{weights} is not a checkpoint of train.py (no class names); pass one")
    classes = len(meta["class_names"])
    if outputs <= classes:
        raise DetectError(f"formats: {outputs} outputs cannot hold the {classes} classes (+ background) of {weights}")
    labels = torch.tensor([0, *range(outputs - classes, outputs)])  # where background and the classes go
    for name, per_class in PREDICTOR_ROWS.items():
        weight, bias = state_dict[f"{PREDICTOR_PREFIX}{name}.weight"], state_dict[f"{PREDICTOR_PREFIX}{name}.bias"]
        rows = (labels[:, None] * per_class + torch.arange(per_class)).flatten()
        wide_weight = weight.new_zeros(outputs * per_class, weight.shape[1])
        wide_bias = bias.new_full((outputs * per_class,), NEVER_LOGIT if name == "cls_score" else 0.0)
        wide_weight[rows], wide_bias[rows] = weight, bias
        state_dict[f"{PREDICTOR_PREFIX}{name}.weight"], state_dict[f"{PREDICTOR_PREFIX}{name}.bias"] = \
            wide_weight, wide_bias
    unused = range(1, outputs - classes)
    first_free_id = max(meta["category_ids"]) + 1
    names = [f"unused {label}" for label in unused] + list(meta["class_names"])
    category_ids = [first_free_id + i for i in range(len(unused))] + list(meta["category_ids"])
    save_atomically({"state_dict": {DETECTOR_PREFIX + key: value for key, value in state_dict.items()},
                     **detector_metadata(names, category_ids, meta.get("model"))}, path)
    return Path(path)
