"""ResNet classifier, ResNet-FPN backbone and Faster R-CNN to ONNX.

The detector graph is torchvision's whole FasterRCNN in eval mode (resize and normalisation inside, boxes mapped
back to the input pixels) for one 3xHxW image of any size; `OnnxDetector` runs it with the same call as the
PyTorch model.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import onnx
import torch
import torchvision
from torch import nn
from torchvision.models.detection import transform as detection_transform

from detect.config import plain_config
from detect.modeling.checkpoint import read_checkpoint
from detect.modeling.model import build_backbone, build_detector
from detect.structures import Classes
from detect.utils.cache import cached_beside
from detect.utils.errors import DetectError, first_line

TASKS = ("classifier", "detector", "backbone")
FEATURE_NAMES = ("0", "1", "2", "3", "pool")  # BackboneWithFPN's output levels (strides 4 to 64)


def build_network(task: str, model_cfg: Mapping[str, Any], classifier_classes: int = 1000,
                  detector_classes: int = 91, model_from_checkpoint: bool = True) -> tuple[nn.Module, Classes | None]:
    """The eval-mode network of `task` for the `model` config, with the weights it names, and its classes if known.

    classifier: torchvision's ResNet, random or from a state_dict file in `model.backbone.weights`;
    backbone: `detect.modeling.model.build_backbone`; detector: `detect.modeling.model.build_detector` (`model.weights`; a checkpoint
    of train.py brings its own model config unless `model_from_checkpoint` is false).
    """
    if task not in TASKS:
        raise DetectError(f"task={task!r} is not a task; choose one of {', '.join(TASKS)}")
    name = model_cfg["backbone"]["name"]
    classes = None
    if task == "classifier":
        weights = model_cfg["backbone"].get("weights")
        state_dict = read_checkpoint(weights) if weights else None
        num_classes = state_dict["fc.weight"].shape[0] if state_dict and "fc.weight" in state_dict else classifier_classes
        network = torchvision.models.get_model(name, num_classes=num_classes)
        if state_dict is not None:
            try:
                network.load_state_dict(state_dict)
            except RuntimeError as error:  # missing keys, other shapes: another network
                raise DetectError(f"model.backbone.weights={weights} is not a {name} classifier state_dict: "
                                  f"{first_line(error, typed=False)}") from None
    elif task == "backbone":
        network = build_backbone(model_cfg["backbone"])
    else:
        network, classes, _, _ = build_detector(model_cfg.get("weights"), model_cfg, detector_classes,
                                                model_from_checkpoint)
    return network.eval(), classes


_TORCHVISION_RESIZE = detection_transform._resize_image_and_masks


def _resize_as_eager(image: torch.Tensor, self_min_size: float, self_max_size: float,
                     target: dict[str, torch.Tensor] | None = None, fixed_size: tuple[int, int] | None = None,
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """torchvision's detection resize for tracing, with the output size computed in float64 as eager PyTorch does.

    torchvision traces `min_size / side` in float32 (a reciprocal times a constant), which makes some images one
    pixel short of eager's size (a 100x100 image at min_size 160 becomes 159x159), and the boxes move by pixels.
    """
    if fixed_size is not None:
        return _TORCHVISION_RESIZE(image, self_min_size, self_max_size, target, fixed_size)
    shape = detection_transform._get_shape_onnx(image).to(torch.float64)  # (H, W)
    limits = torch.tensor([float(self_min_size), float(self_max_size)], dtype=torch.float64)  # 1-D: stays float64
    scale = (limits / torch.stack([shape.min(), shape.max()])).min()
    size = torch.floor(shape * scale).to(torch.int64)
    image = torch.nn.functional.interpolate(image[None], size=(size[0], size[1]), mode="bilinear",
                                            align_corners=False)[0]
    return image, target


def _merge_levels_by_gather(levels: torch.Tensor, unmerged_results: list[torch.Tensor]) -> torch.Tensor:
    """torchvision's `_onnx_merge_levels` (RoIAlign results per FPN level back in box order) as one Gather.

    torchvision traces one ScatterElements per level with an int64 index as large as the output (boxes x 256 x 7 x
    7): about 7% of the R50-FPN detector's ONNX Runtime time at 800x1333. Same values, reordered.
    """
    order = torch.cat([torch.where(levels == level)[0] for level in range(len(unmerged_results))])
    return torch.cat(unmerged_results)[torch.argsort(order)]


def _batched_nms_without_branch(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                                iou_threshold: float) -> torch.Tensor:
    """torchvision's `batched_nms` (its coordinate trick: boxes of each class moved apart) without its `if
    boxes.numel() == 0`, which the tracer writes as an ONNX If that NNCF's int8 quantization crashes on (a
    segmentation fault in OpenVINO 2026.4 / NNCF 3.4). A zero appended to the coordinates keeps `max` defined for no
    boxes, and NMS of no boxes keeps none: the same results."""
    max_coordinate = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max()
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


def export_onnx(network: nn.Module, task: str, example: torch.Tensor, path: str | Path, opset: int = 17,
                metadata: Mapping[str, str] | None = None) -> Path:
    """Trace `network` on `example` into an ONNX file with dynamic image size (and dynamic batch but for the detector).

    `example` is one 3xHxW image for the detector (whose graph takes one image), an NxCxHxW batch otherwise.
    Uses the TorchScript-based exporter (`dynamo=False`): torchvision's detection models export with it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if task == "detector":
        args, input_names, output_names = ([example],), ["image"], ["boxes", "labels", "scores"]
        dynamic_axes = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in output_names}}
    else:
        args, input_names = (example,), ["images"]
        output_names = ["logits"] if task == "classifier" else list(FEATURE_NAMES)
        image_axes = {0: "batch", 2: "height", 3: "width"}
        dynamic_axes = {"images": image_axes,
                        **{n: {0: "batch"} if task == "classifier" else {0: "batch", 2: f"h{n}", 3: f"w{n}"}
                           for n in output_names}}
    with (warnings.catch_warnings(), torch.no_grad(),
          mock.patch.object(detection_transform, "_resize_image_and_masks", _resize_as_eager),
          mock.patch.object(torchvision.ops.poolers, "_onnx_merge_levels", _merge_levels_by_gather),
          mock.patch.object(torchvision.ops.boxes, "batched_nms", _batched_nms_without_branch)):
        warnings.simplefilter("ignore")  # tracer warnings about Python values are expected here
        torch.onnx.export(network.eval(), args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    if metadata:
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, dict(metadata))
        onnx.save(proto, str(path))
    return path


def flat_outputs(task: str, output: Any) -> list[torch.Tensor]:
    """A classifier's or backbone's PyTorch output as the list of tensors its ONNX graph returns."""
    return [output] if task == "classifier" else [output[name] for name in FEATURE_NAMES]


def parse_size(size: int | str) -> tuple[int, int]:
    """(height, width) of `224`, `"800x1333"` (HxW), `"720p"` or `"1080p"` (16:9)."""
    text = str(size).strip().lower()
    if text.endswith("p") and text[:-1].isdigit():
        height = int(text[:-1])
        return height, round(height * 16 / 9)
    parts = text.split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[-1])
    raise DetectError(f"size {size!r} is not an image size; write 224 (square), 800x1333 (HxW) or 1080p")




def detector_metadata_props(model_cfg: Mapping[str, Any], classes: Classes) -> dict[str, str]:
    """What an exported detector carries: its task, backbone, model config and classes (read by the runners)."""
    return {"task": "detector", "backbone": model_cfg["backbone"]["name"],
            "model": json.dumps(plain_config(model_cfg)),
            "class_names": json.dumps(classes.names), "category_ids": json.dumps(classes.category_ids)}


def export_detector(weights: str | None, model_cfg: Mapping[str, Any], path: str | Path, opset: int = 17,
                    model_from_checkpoint: bool = True, size: tuple[int, int] = (480, 640),
                    num_classes: int = 91) -> tuple[Path, nn.Module, Classes]:
    """The detector of `weights` (with a checkpoint's own model config; random weights: `num_classes` outputs) to
    ONNX: (path, PyTorch network, classes)."""
    network, classes, model_cfg, _ = build_detector(weights, model_cfg, num_classes, model_from_checkpoint)
    path = export_onnx(network, "detector", torch.rand(3, *size), path, opset,
                       detector_metadata_props(model_cfg, classes))
    return path, network, classes


def file_spec(path: Path) -> dict[str, Any]:
    """What identifies a file's version for a cache key: its full path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def onnx_model(weights: str | None, model_cfg: Mapping[str, Any], model_from_checkpoint: bool = True,
               opset: int = 17) -> Path:
    """The detector's ONNX graph for `weights`: a .onnx as it is; a checkpoint or state_dict exported once into
    `<stem>_onnx/<key>/model.onnx` beside it (or under the cache directory when its folder is read-only), keyed by
    the file, the model config and the opset."""
    if not weights:
        raise DetectError("an ONNX or OpenVINO backend needs weights=<checkpoint or model.onnx>")
    source = Path(weights)
    if not source.is_file():
        raise DetectError(f"weights {source} does not exist; pass a checkpoint, a model.onnx or a model.xml")
    if source.suffix == ".onnx":
        return source
    spec = {"weights": file_spec(source), "opset": opset, "model": plain_config(model_cfg),
            "from_checkpoint": model_from_checkpoint}
    folder = cached_beside(source, "onnx", spec, "model.onnx", lambda tmp: export_detector(
        str(source), model_cfg, tmp / "model.onnx", opset, model_from_checkpoint))
    return folder / "model.onnx"
