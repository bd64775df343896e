"""ResNet classifier, ResNet-FPN backbone and Faster R-CNN to ONNX, run by ONNX Runtime, checked against PyTorch.

    uv run python -m detect.export export.task=detector model/backbone=resnet50 model.weights=<checkpoint>
    uv run python -m detect.export export.task=classifier model/backbone=resnet18

The detector graph is torchvision's whole FasterRCNN in eval mode (resize and normalisation inside, boxes mapped
back to the input pixels) for one 3xHxW image of any size; `OnnxDetector` runs it with the same call as the
PyTorch model. Every export is checked against PyTorch on random images before it is reported as written.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import hydra
import onnx
import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchvision.models.detection import transform as detection_transform

from detect.checkpoint import read_checkpoint
from detect.config import CONFIG_DIR
from detect.errors import DetectError
from detect.inference.onnx import OnnxDetector, OnnxModel
from detect.model import Classes, build_backbone, build_model, read_detector_weights

TASKS = ("classifier", "detector", "backbone")
FEATURE_NAMES = ("0", "1", "2", "3", "pool")  # BackboneWithFPN's output levels (strides 4 to 64)


def build_network(task: str, model_cfg: Mapping[str, Any], classifier_classes: int = 1000,
                  detector_classes: int = 91) -> tuple[nn.Module, Classes | None]:
    """The eval-mode network of `task` for the `model` config, with the weights it names, and its classes if known.

    classifier: torchvision's ResNet, random or from a state_dict file in `model.backbone.weights`;
    backbone: `detect.model.build_backbone`; detector: `detect.model.build_model` (`model.weights`).
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
                                  f"{str(error)[:300]}") from None
    elif task == "backbone":
        network = build_backbone(model_cfg["backbone"])
    else:
        weights = read_detector_weights(model_cfg["weights"], name) if model_cfg.get("weights") else None
        network = build_model(model_cfg, weights.num_classes if weights else detector_classes, weights)
        classes = weights.classes if weights else None
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
          mock.patch.object(torchvision.ops.poolers, "_onnx_merge_levels", _merge_levels_by_gather)):
        warnings.simplefilter("ignore")  # tracer warnings about Python values are expected here
        torch.onnx.export(network.eval(), args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    if metadata:
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, dict(metadata))
        onnx.save(proto, str(path))
    return path


@dataclass
class Parity:
    """Whether an exported model reproduces PyTorch, and the worst differences in words."""

    ok: bool
    summary: str


def detector_parity(reference: Sequence[Mapping[str, torch.Tensor]], candidate: Sequence[Mapping[str, torch.Tensor]],
                    box_px: float = 1.0, score_tol: float = 1e-3, score_thresh: float = 0.05,
                    detections_per_img: int = 100) -> Parity:
    """Same detections per image: each box has one of the same label within `box_px` (every coordinate) in the
    other output, with a score within `score_tol`. Matching by box makes the check blind to the order of near-equal
    scores. A detection scored within `score_tol` of the cut (`score_thresh`, or the lowest score kept when
    `detections_per_img` fill up) may be in one output only: a rounding difference moves it across the cut."""
    worst_box = worst_score = 0.0
    matched = at_cut = 0
    for i, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
        ref = {k: v.detach().cpu().double() for k, v in ref.items()}
        cand = {k: v.detach().cpu().double() for k, v in cand.items()}
        distance = (ref["boxes"][:, None] - cand["boxes"][None]).abs().amax(-1)
        distance[ref["labels"][:, None] != cand["labels"][None]] = float("inf")
        ref_distance = distance.min(1).values if len(cand["boxes"]) else torch.full((len(ref["boxes"]),), torch.inf)
        cand_distance = distance.min(0).values if len(ref["boxes"]) else torch.full((len(cand["boxes"]),), torch.inf)
        cut = max([score_thresh] + [out["scores"].min().item() for out in (ref, cand)
                                    if len(out["scores"]) >= detections_per_img])
        lone = torch.cat([ref["scores"][ref_distance > box_px], cand["scores"][cand_distance > box_px]])
        if (lone > cut + score_tol).any():
            return Parity(False, f"image {i}: {int((lone > cut + score_tol).sum())} detections (best score "
                                 f"{lone.max():.3g}) have no match of the same label within {box_px:g} px")
        kept = ref_distance <= box_px
        if kept.any():
            match = distance[kept].argmin(1)
            worst_box = max(worst_box, ref_distance[kept].max().item())
            worst_score = max(worst_score, (ref["scores"][kept] - cand["scores"][match]).abs().max().item())
        matched, at_cut = matched + int(kept.sum()), at_cut + len(lone)
    ok = worst_box <= box_px and worst_score <= score_tol
    lone_text = f", {at_cut} at the score cut in one output only" if at_cut else ""
    return Parity(ok, f"{matched} detections matched, boxes within {worst_box:.2g} px, scores within "
                      f"{worst_score:.2g} (limits {box_px:g} px, {score_tol:g}){lone_text}")


def tensor_parity(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor], rel_tol: float = 1e-4) -> Parity:
    """Every output within `rel_tol` of PyTorch, relative to the largest magnitude of that output."""
    worst = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        if ref.shape != cand.shape:
            return Parity(False, f"output shape {tuple(cand.shape)}, PyTorch has {tuple(ref.shape)}")
        ref, cand = ref.cpu().double(), cand.cpu().double()
        worst = max(worst, ((ref - cand).abs().max() / ref.abs().max().clamp_min(1e-12)).item())
    return Parity(worst <= rel_tol, f"outputs within {worst:.2g} relative (limit {rel_tol:g})")


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


def export_and_check(cfg: DictConfig) -> tuple[Path, list[Parity]]:
    """Build the `export.task` network from the config, export it and compare ONNX Runtime to PyTorch."""
    task, export_cfg = cfg.export.task, cfg.export
    torch.manual_seed(cfg.seed)
    network, classes = build_network(task, cfg.model, cfg.classifier_classes, cfg.detector_classes)
    metadata = {"task": task, "backbone": cfg.model.backbone.name,
                "model": json.dumps(OmegaConf.to_container(cfg.model, resolve=True))}
    if classes is not None:
        metadata |= {"class_names": json.dumps(classes.names), "category_ids": json.dumps(classes.category_ids)}
    height, width = parse_size(export_cfg.size)
    batch = 1 if task == "detector" else 2
    path = export_onnx(network, task, torch.rand(batch, 3, height, width)[0 if task == "detector" else slice(None)],
                       export_cfg.path, cfg.onnxruntime.opset, metadata)
    runner_class = OnnxDetector if task == "detector" else OnnxModel
    runner = runner_class(path, "cpu", cfg.onnxruntime.threads, cfg.onnxruntime.optimization)
    sizes = [(height, width), (width, height)]  # the traced size and another one: the size is an input
    return path, [check_parity(network, task, runner, torch.rand(batch, 3, *size), cfg.parity) for size in sizes]


def check_parity(network: nn.Module, task: str, runner: OnnxModel | OnnxDetector,
                 images: torch.Tensor | list[torch.Tensor], parity_cfg: Mapping[str, float]) -> Parity:
    """Run `network` and its ONNX `runner` on `images` (a batch, or a list of images for the detector)."""
    with torch.inference_mode():
        reference = network(list(images)) if task == "detector" else flat_outputs(task, network(images))
    if task == "detector":
        return detector_parity(reference, runner(images), parity_cfg["box_px"], parity_cfg["score"],
                               network.roi_heads.score_thresh, network.roi_heads.detections_per_img)
    return tensor_parity(reference, runner(images=images), parity_cfg["logits_rel"])


@hydra.main(config_path=str(CONFIG_DIR), config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        path, results = export_and_check(cfg)
    except DetectError as error:
        sys.exit(f"error: {error}")
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({size_mb:.0f} MiB, opset {cfg.onnxruntime.opset}, dynamic image size)")
    for parity in results:
        print(f"parity with PyTorch: {'ok' if parity.ok else 'FAILED'}: {parity.summary}")
    if not all(parity.ok for parity in results):
        sys.exit("error: the ONNX model does not reproduce PyTorch within the parity limits (see above)")


if __name__ == "__main__":
    main()
