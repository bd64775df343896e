"""Inference backends: what runs the network. Each loader returns a `Backend` called like torchvision's FasterRCNN
in eval mode: a list of float32 RGB 3xHxW tensors in 0..1 on the device -> per image `boxes` (xyxy, input pixels),
`labels` (1..K) and `scores`.

- `torch`: torchvision's Faster R-CNN from the `model` config and weights, batch norms folded into the
  convolutions, then as asked: channels_last, torch.compile (backbone and RPN head), autocast to fp16/bf16.
- `onnxruntime`: a model written by `python -m detect.export` (chosen for `.onnx` weights).
A new backend is one loader with `load_torch`'s signature, added to `LOADERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.detection import FasterRCNN

from detect.device import PRECISIONS
from detect.errors import DetectError, check_choice
from detect.model import COCO_CLASSES, Classes, build_model, read_detector_weights

DetectorCall = Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]]


@dataclass
class Backend:
    """A network behind one call (see the module docstring), its classes, and what a report says about it."""

    model: DetectorCall
    classes: Classes
    description: str
    # (resized, padded) HxW the network sees for an HxW frame; None where the backend cannot tell.
    input_size: Callable[[int, int], tuple[tuple[int, int], tuple[int, int]]] | None = None
    name: str = "custom"  # the LOADERS key it came from

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return self.model(images)


@dataclass
class BackendOptions:
    """How a backend runs: where, at what precision, with which optimizations."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None


def fold_batchnorm(resnet: nn.Module) -> None:
    """Fold every batch norm of an eval-mode torchvision ResNet (frozen or not) into the convolution before it.

    The outputs are the same up to float rounding, and a pass over each activation is saved.
    """
    for block in list(resnet.modules()):
        for conv_name, norm_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
            conv, norm = getattr(block, conv_name, None), getattr(block, norm_name, None)
            if isinstance(conv, nn.Conv2d) and norm is not None and not isinstance(norm, nn.Identity):
                setattr(block, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(block, norm_name, nn.Identity())
        downsample = getattr(block, "downsample", None)
        if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
            block.downsample = nn.Sequential(fuse_conv_bn_eval(downsample[0], downsample[1]))


def _classes_for(weights_classes: Classes | None, num_classes: int, source: str) -> Classes:
    if weights_classes is None:
        if num_classes == len(COCO_CLASSES) + 1:
            return COCO_CLASSES
        return Classes([f"class {i}" for i in range(1, num_classes)], list(range(1, num_classes)))
    if len(weights_classes) != num_classes - 1:
        raise DetectError(f"weights {source} name {len(weights_classes)} classes but the box predictor has "
                          f"{num_classes - 1}; the checkpoint is inconsistent")
    return weights_classes


def load_torch(weights: str | None, model_cfg: DictConfig, options: BackendOptions,
               model_from_checkpoint: bool = True) -> Backend:
    """torchvision's Faster R-CNN from `model_cfg` and `weights` (None: random weights, COCO's 91 outputs).

    A checkpoint of train.py brings its own model config (backbone, sizes, head) unless `model_from_checkpoint`
    is false; only the score threshold of `model_cfg` is kept then.
    """
    loaded = read_detector_weights(str(weights), model_cfg.backbone.name) if weights else None
    num_classes = loaded.num_classes if loaded else len(COCO_CLASSES) + 1
    classes = _classes_for(loaded.classes if loaded else None, num_classes, str(weights))
    if model_from_checkpoint and loaded is not None and loaded.model_config:
        model_cfg = OmegaConf.merge(loaded.model_config, {"roi": {"score_thresh": model_cfg.roi.score_thresh}})
    model: FasterRCNN = build_model(model_cfg, num_classes, loaded).eval()
    fold_batchnorm(model.backbone.body)
    device = options.device
    model.to(device)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    if options.compile:
        model.backbone = torch.compile(model.backbone, dynamic=False)
        model.rpn.head = torch.compile(model.rpn.head, dynamic=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # a video keeps one size: the fastest kernels are found once
    dtype = PRECISIONS[options.precision]

    def detect(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(images)

    def input_size(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        images, _ = model.transform([torch.zeros(3, height, width, device=device)])
        return tuple(images.image_sizes[0]), tuple(images.tensors.shape[-2:])

    weights_text = loaded.source if loaded else "random weights"
    return Backend(detect, classes, f"Faster R-CNN {model_cfg.backbone.name}-FPN ({weights_text})", input_size,
                   "torch")


def load_onnxruntime(weights: str | None, model_cfg: DictConfig, options: BackendOptions,
                     model_from_checkpoint: bool = True) -> Backend:
    """An ONNX model of `python -m detect.export` on ONNX Runtime (fp32); its classes come from the file."""
    if not weights or Path(weights).suffix != ".onnx":
        raise DetectError(f"backend=onnxruntime needs weights=<model.onnx> (from `python -m detect.export`), "
                          f"got {weights}")
    if options.precision != "fp32":
        raise DetectError(f"backend=onnxruntime runs the exported fp32 graph; precision={options.precision} is not "
                          "supported there: use precision=fp32")
    # onnxruntime is imported only when an ONNX model is asked for
    from detect.inference.onnx import OnnxDetector

    detector = OnnxDetector(weights, options.device, options.threads)
    return Backend(detector, detector.classes or COCO_CLASSES, f"Faster R-CNN, ONNX Runtime ({weights})",
                   name="onnxruntime")


LOADERS: dict[str, Callable[..., Backend]] = {"torch": load_torch, "onnxruntime": load_onnxruntime}
SUFFIX_BACKENDS = {".onnx": "onnxruntime"}  # the backend a weights file implies when `backend` is not given


def load_backend(backend: str | None, weights: str | None, model_cfg: DictConfig, options: BackendOptions,
                 model_from_checkpoint: bool = True) -> Backend:
    """The backend named by `backend`, or implied by the weights' suffix (torch otherwise)."""
    check_choice("precision", options.precision, PRECISIONS)
    if backend is None:
        backend = SUFFIX_BACKENDS.get(Path(str(weights)).suffix, "torch") if weights else "torch"
    check_choice("backend", backend, LOADERS)
    return LOADERS[backend](weights, model_cfg, options, model_from_checkpoint)
