"""Where a training run's detector starts, settled before any data is read: `model.weights` resolved and its files
read (a missing download or a corrupt file fails first), the model config a checkpoint of train.py brings, the
switch that keeps a from-scratch backbone trainable, and the run header's lines on where each part's weights came
from, what was initialised and what is frozen.

`model.weights`: `pretrained` (torchvision's COCO detector where one exists for the backbone, resnet50: COCO_V1;
else the ImageNet backbone), `imagenet` (the backbone from `model.backbone.weights`, else IMAGENET1K_V1; FPN and
heads random), null (the backbone from `model.backbone.weights`, null: all random), a torchvision enum name, a
checkpoint of train.py (its model config is used) or a detector state_dict. A resumed run reads none of them: its
checkpoint holds every tensor and the model config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig
from torchvision.models.detection import FasterRCNN

from detect.config import plain_config
from detect.modeling.checkpoint import METADATA_KEY, read_checkpoint
from detect.modeling.model import build_model, frozen_stages, load_detector_weights
from detect.modeling.weights import DETECTOR_WEIGHT_ENUMS, DetectorWeights, read_backbone_weights, read_detector_weights
from detect.structures import Classes

PRETRAINED = "pretrained"
IMAGENET = "imagenet"
COCO_DETECTOR = "COCO_V1"         # what `pretrained` loads where DETECTOR_WEIGHT_ENUMS has the backbone
IMAGENET_BACKBONE = "IMAGENET1K_V1"  # what `imagenet` loads when model.backbone.weights is null
ALL_STAGES = 5                     # model.backbone.trainable_layers that trains every ResNet stage


@dataclass
class InitialWeights:
    """The model config a run trains (stored in its checkpoints), the weights read for it, and header lines."""

    model_config: dict[str, Any]
    detector: DetectorWeights | None = None
    backbone: dict[str, torch.Tensor] | None = None
    lines: list[str] = field(default_factory=list)

    def build(self, classes: Classes) -> FasterRCNN:
        """The detector for `classes` with these weights loaded; what became of its box predictor joins `lines`."""
        model = build_model(self.model_config, len(classes) + 1, pretrained_backbone=False,
                            backbone_weights=self.backbone)
        if self.detector is not None:
            predictor = load_detector_weights(model, self.detector, classes)
            if predictor:
                self.lines.append(f"weights: {predictor}")
        return model


def resolve_initial_weights(cfg: DictConfig) -> InitialWeights:
    """The weights a fit or evaluation of `cfg` starts from, with every file read (DetectError on a bad one)."""
    model_cfg = plain_config(cfg.model)
    if cfg.mode == "evaluate":
        weights = read_detector_weights(cfg.ckpt_path, model_cfg["backbone"]["name"])
        config, line = checkpoint_model_config(weights, model_cfg)
        return InitialWeights(config, weights, lines=[f"weights: {cfg.ckpt_path}", *line])
    if cfg.ckpt_path:  # resuming: Lightning restores every tensor from the checkpoint, which has the model config
        meta = read_checkpoint(cfg.ckpt_path).get(METADATA_KEY, {})
        return InitialWeights(meta.get("model") or model_cfg,
                              lines=[f"weights: every tensor and the model config from {cfg.ckpt_path} "
                                     "(model.weights is not read)"])
    return _initial_weights(model_cfg)


def _initial_weights(model_cfg: dict[str, Any]) -> InitialWeights:
    spec, backbone = model_cfg["weights"], model_cfg["backbone"]
    name = backbone["name"]
    instead = "train from scratch with model.weights=null" + (
        " model.backbone.weights=null" if backbone["weights"] else "")
    resolved = (COCO_DETECTOR if name in DETECTOR_WEIGHT_ENUMS else IMAGENET) if spec == PRETRAINED else spec
    what = f"model.weights={spec}" + (f" ({name}: {resolved})" if resolved != spec else "")
    if resolved and resolved != IMAGENET:
        detector = read_detector_weights(str(resolved), name, instead, what)
        config, lines = checkpoint_model_config(detector, model_cfg)
        if not detector.model_config and backbone["weights"]:
            lines.append(f"weights: model.backbone.weights={backbone['weights']} not read (model.weights holds the "
                         "backbone too)")
        return InitialWeights(config, detector, lines=[f"weights: the whole detector from {detector.source}", *lines,
                                                        _stages_line(config["backbone"])])
    source = backbone["weights"] or (IMAGENET_BACKBONE if resolved == IMAGENET else None)
    if source:
        state_dict, where = read_backbone_weights(source, name, instead, what if not backbone["weights"] else None)
        backbone["weights"] = source
        return InitialWeights(model_cfg, backbone=state_dict, lines=[
            f"weights: backbone {name} from {where}; FPN, RPN and box head initialised at random",
            _stages_line(backbone)])
    lines = ["weights: none (model.weights=null, model.backbone.weights=null): every tensor initialised at random"]
    switched = _train_every_stage(backbone)
    return InitialWeights(model_cfg, lines=[*lines, *switched, _stages_line(backbone)])


def checkpoint_model_config(weights: DetectorWeights, model_cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The model config to build for `weights`: a checkpoint of train.py's own (with this run's `weights` key),
    else `model_cfg`; and a header line naming where the checkpoint's differs from this run's."""
    if not weights.model_config:
        return model_cfg, []
    config = copy.deepcopy(weights.model_config) | {"weights": model_cfg["weights"]}
    run, stored = _leaves(model_cfg), _leaves(config)
    differences = [f"{key} {run.get(key)} -> {value}" for key, value in stored.items()
                   if run.get(key) != value and key not in ("weights", "backbone.weights")]
    shown = ", ".join(differences[:6]) + (f", ... {len(differences) - 6} more" if len(differences) > 6 else "")
    return config, [f"weights: model config from {weights.source}" + (f", not this run's ({shown})" if shown else "")]


def _leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value}."""
    leaves = {}
    for key, value in config.items():
        leaves |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return leaves


def _train_every_stage(backbone: dict[str, Any]) -> list[str]:
    """A backbone that starts from random weights trains every stage with batch statistics: a frozen random stage
    never learns and an unloaded FrozenBatchNorm2d is a fixed identity. Switches `backbone` so; returns the line."""
    changes = []
    if backbone["trainable_layers"] < ALL_STAGES:
        changes.append(f"trainable_layers {backbone['trainable_layers']} -> {ALL_STAGES}")
        backbone["trainable_layers"] = ALL_STAGES
    if backbone["norm"] == "frozen_bn":
        changes.append("norm frozen_bn -> bn")
        backbone["norm"] = "bn"
    return [f"weights: from scratch, so model.backbone.{' and '.join(changes)} (a frozen random stage never learns, "
            "an unloaded frozen_bn normalises nothing)"] if changes else []


def _stages_line(backbone: dict[str, Any]) -> str:
    frozen = frozen_stages(backbone["trainable_layers"])
    return (f"weights: backbone stages frozen: {', '.join(frozen) or 'none'} (model.backbone.trainable_layers="
            f"{backbone['trainable_layers']}); norm {backbone['norm']}"
            + (", batch norms of frozen stages frozen too" if frozen and backbone["norm"] != "frozen_bn" else ""))
