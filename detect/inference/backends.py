"""Inference backends: what runs the network. Each loader returns a `Backend` called like torchvision's FasterRCNN
in eval mode: a list of float32 RGB 3xHxW tensors in 0..1 on the device -> per image `boxes` (xyxy, input pixels),
`labels` (1..K) and `scores`.

- `torch`: torchvision's Faster R-CNN from the `model` config and weights, batch norms folded into the
  convolutions, then as asked: channels_last, torch.compile (backbone and RPN head), fp16/bf16 (autocast: the
  networks in half precision, anchors, box decoding and NMS in float32: `detect.modeling.half_precision`).
- `onnxruntime`: a model written by `python -m detect.export` (chosen for `.onnx` weights), or one exported from a
  checkpoint on first use and cached beside it; fp32 on the CPU.
- `openvino`: an IR written by `python -m detect.export format=openvino` (chosen for `.xml` weights), or one converted
  from a checkpoint or a .onnx on first use and cached beside it; fp32, bf16 (a run-time hint) or int8 (NNCF).
ONNX Runtime and OpenVINO run on the CPU only; on a GPU, backend=torch runs fp16 / bf16 and compile.
A new backend is one loader with `load_torch`'s signature, added to `LOADERS` with its precisions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from detect.modeling.half_precision import float32_boxes
from detect.modeling.model import COCO_CLASSES, DetectorCall, build_detector
from detect.modeling.tta import at_short_side
from detect.structures import Classes
from detect.utils.cpu import lacks_fast_units
from detect.utils.device import PRECISIONS
from detect.utils.errors import DetectError, check_choice


@dataclass
class Backend:
    """A network behind one call (see the module docstring), its classes, and what a report says about it."""

    model: DetectorCall
    classes: Classes
    description: str
    # (resized, padded) HxW the network sees for an HxW frame; None where the backend cannot tell.
    input_size: Callable[[int, int], tuple[tuple[int, int], tuple[int, int]]] | None = None
    name: str = "custom"  # the LOADERS key it came from
    files: list[Path] = field(default_factory=list)  # the model's files on disk (none: random weights)
    precision: str = "fp32"  # what it runs: OpenVINO runs bf16 as fp32 on a CPU without bf16
    slow: str = ""  # why it runs slower than fp32 here (torch bf16 / fp16 on a CPU without their units), or ''
    # the network resizing to another short side (test-time augmentation); None where the graph fixes its resize
    resized: Callable[[int], DetectorCall] | None = None

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
    calibration: str | None = None  # openvino int8: images to calibrate on; None: the checkpoint's training images
    precision_check: bool = True  # openvino int8 / bf16: compare with fp32 at the first load on a CPU, fp32 if off


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


def load_torch(weights: str | None, model_cfg: DictConfig, options: BackendOptions,
               model_from_checkpoint: bool = True) -> Backend:
    """torchvision's Faster R-CNN from `model_cfg` and `weights` (`detect.modeling.model.build_detector`)."""
    model, classes, model_cfg, weights_text = build_detector(weights, model_cfg,
                                                             model_from_checkpoint=model_from_checkpoint)
    fold_batchnorm(model.backbone.body)
    device = options.device
    model.to(device)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    if options.compile:
        model.backbone = torch.compile(model.backbone, dynamic=False)
        model.rpn.head = torch.compile(model.rpn.head, dynamic=False)
    float32_boxes(model)  # after compile: the casts run outside the compiled graphs
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # a video keeps one size: the fastest kernels are found once
    dtype = PRECISIONS[options.precision]
    slow = lacks_fast_units(options.precision) if device.type == "cpu" else ""
    if slow:
        print(f"torch: {slow}, so precision={options.precision} runs slower than fp32 here (running it as asked; "
              "precision=fp32 or backend=openvino is faster)", file=sys.stderr)

    def detect(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(images)

    def input_size(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        images, _ = model.transform([torch.zeros(3, height, width, device=device)])
        return tuple(images.image_sizes[0]), tuple(images.tensors.shape[-2:])

    return Backend(detect, classes, f"Faster R-CNN {model_cfg.backbone.name}-FPN ({weights_text})", input_size,
                   "torch", [Path(weights)] if weights and Path(weights).is_file() else [], options.precision, slow,
                   partial(at_short_side, model, detect))


def load_onnxruntime(weights: str | None, model_cfg: DictConfig, options: BackendOptions,
                     model_from_checkpoint: bool = True) -> Backend:
    """A model.onnx of `python -m detect.export`, or a checkpoint exported on first use (`onnx_model`), on ONNX
    Runtime on the CPU (fp32); its classes come from the file."""
    check_cpu("onnxruntime", options.device)
    # onnx and onnxruntime are imported only when an ONNX model is asked for
    from detect.export.onnx_export import onnx_model
    from detect.export.onnx_runtime import OnnxDetector

    path = onnx_model(weights, model_cfg, model_from_checkpoint)
    detector = OnnxDetector(path, options.device, options.threads)
    return Backend(detector, detector.classes or COCO_CLASSES, f"Faster R-CNN, ONNX Runtime ({path})",
                   name="onnxruntime", files=[path])


def load_openvino(weights: str | None, model_cfg: DictConfig, options: BackendOptions,
                  model_from_checkpoint: bool = True) -> Backend:
    """An OpenVINO IR (`detect.export.openvino_export.openvino_model`) on the CPU; its classes come from the file."""
    check_cpu("openvino", options.device)
    # openvino (and nncf, for int8) are imported only when asked for
    from detect.export.images import labelled_images
    from detect.export.openvino_export import openvino_model
    from detect.export.precision_check import CHECK_IMAGES, CheckImages, checked_detector

    path = openvino_model(weights, model_cfg, options.precision, options.calibration, model_from_checkpoint)
    checkpoint = weights if weights and Path(weights).suffix not in SUFFIX_BACKENDS else None
    images = None
    if options.calibration or checkpoint:
        def images() -> CheckImages:  # the calibration source, or the checkpoint's val images and their labels
            return labelled_images(options.calibration, checkpoint, "val", CHECK_IMAGES)
    detector, note = checked_detector(path, options.precision, options.threads, images, options.precision_check)
    return Backend(detector, detector.classes or COCO_CLASSES,
                   f"Faster R-CNN, OpenVINO {detector.precision} ({detector.path}{'; ' + note if note else ''})",
                   name="openvino", files=[detector.path, detector.path.with_suffix(".bin")],
                   precision=detector.precision)


def check_cpu(backend: str, device: torch.device) -> None:
    """One line unless `device` is the CPU: the ONNX Runtime (CPU wheel) and OpenVINO backends run there only."""
    if device.type != "cpu":
        raise DetectError(f"backend={backend} runs on the CPU here, not device={device}; use device=cpu, or "
                          "backend=torch (fp16 / bf16, compile) on the GPU")


LOADERS: dict[str, Callable[..., Backend]] = {"torch": load_torch, "onnxruntime": load_onnxruntime,
                                              "openvino": load_openvino}
BACKEND_PRECISIONS = {"torch": tuple(PRECISIONS), "onnxruntime": ("fp32",), "openvino": ("fp32", "bf16", "int8")}
SUFFIX_BACKENDS = {".onnx": "onnxruntime", ".xml": "openvino"}  # what a weights file implies without `backend`


def load_backend(backend: str | None, weights: str | None, model_cfg: DictConfig, options: BackendOptions,
                 model_from_checkpoint: bool = True) -> Backend:
    """The backend named by `backend`, or implied by the weights' suffix (torch otherwise)."""
    backend = check_backend(backend, weights, options.precision)
    return LOADERS[backend](weights, model_cfg, options, model_from_checkpoint)


def check_backend(backend: str | None, weights: str | None, precision: str) -> str:
    """The backend named, or implied by the weights' suffix (torch otherwise), if it runs `precision`; else one line."""
    if backend is None:
        backend = SUFFIX_BACKENDS.get(Path(str(weights)).suffix, "torch") if weights else "torch"
    check_choice("backend", backend, LOADERS)
    check_choice("precision", precision, sorted({p for kept in BACKEND_PRECISIONS.values() for p in kept}))
    if precision not in BACKEND_PRECISIONS[backend]:
        supported = {name for name, kept in BACKEND_PRECISIONS.items() if precision in kept}
        raise DetectError(f"backend={backend} runs precision {' | '.join(BACKEND_PRECISIONS[backend])}, not "
                          f"precision={precision}" + (f"; {' or '.join(sorted(supported))} runs it" if supported
                                                      else ""))
    return backend
