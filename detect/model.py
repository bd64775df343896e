"""Faster R-CNN with a ResNet-FPN backbone of any depth, built from the `model` config group.

Weights come from three places, all loaded with `weights_only=True`:
- a torchvision weight enum name (`COCO_V1` for the detector, `IMAGENET1K_V1` for a backbone), downloaded once;
- a checkpoint written by train.py (its class names and category ids travel with it);
- a plain state_dict, torchvision's `fasterrcnn_resnet50_fpn` one included (COCO classes then).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from omegaconf import OmegaConf
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from detect.checkpoint import read_checkpoint, split_detector_checkpoint
from detect.errors import DetectError

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
NORMS = {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "sync_bn": nn.BatchNorm2d}
# torchvision publishes a COCO-trained Faster R-CNN for R50-FPN only.
DETECTOR_WEIGHT_ENUMS = {"resnet50": torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights}
COCO_CLASS_NAMES = list(DETECTOR_WEIGHT_ENUMS["resnet50"].COCO_V1.meta["categories"][1:])  # label i = COCO id i
PREDICTOR_PREFIX = "roi_heads.box_predictor."


@dataclass
class Classes:
    """Foreground classes: label `i` (1-based; 0 is background) is `names[i-1]` with dataset id `category_ids[i-1]`."""

    names: list[str]
    category_ids: list[int]

    def __len__(self) -> int:
        return len(self.names)


COCO_CLASSES = Classes(COCO_CLASS_NAMES, list(range(1, len(COCO_CLASS_NAMES) + 1)))


@dataclass
class DetectorWeights:
    """A detector state_dict and, when the source says so, the classes it was trained on."""

    state_dict: dict[str, torch.Tensor]
    classes: Classes | None
    source: str
    model_config: dict[str, Any] | None = None  # the `model` config a checkpoint of train.py was trained with

    @property
    def num_classes(self) -> int:
        """Classes of the box predictor, background included."""
        return self.state_dict[PREDICTOR_PREFIX + "cls_score.weight"].shape[0]


def _is_enum_name(spec: str) -> bool:
    return not Path(spec).suffix and "/" not in spec and not Path(spec).exists()


def _download_state_dict(weights: torchvision.models.WeightsEnum) -> dict[str, torch.Tensor]:
    try:
        return weights.get_state_dict(progress=True)
    except Exception as error:  # URLError, HTTPError, socket errors ... all mean the same to the user
        raise DetectError(
            f"could not download torchvision weights {weights} ({error}); offline, pass a local file instead"
        ) from error


def _weight_enum(enum_class: type[torchvision.models.WeightsEnum], name: str, key: str) -> torchvision.models.WeightsEnum:
    try:
        return enum_class[name]
    except KeyError:
        allowed = ", ".join(["DEFAULT", *enum_class.__members__])
        raise DetectError(f"{key}={name!r} is not a {enum_class.__name__} name; choose one of {allowed} or a file path") from None


def read_detector_weights(spec: str, backbone_name: str) -> DetectorWeights:
    """Read detector weights from a torchvision enum name, one of our checkpoints or a plain state_dict."""
    if _is_enum_name(spec):
        if backbone_name not in DETECTOR_WEIGHT_ENUMS:
            raise DetectError(f"model.weights={spec!r}: torchvision has COCO detector weights for resnet50 only; "
                              f"for {backbone_name} pass a local checkpoint file")
        weights = _weight_enum(DETECTOR_WEIGHT_ENUMS[backbone_name], spec, "model.weights")
        return DetectorWeights(_download_state_dict(weights), COCO_CLASSES, str(weights))
    state_dict, meta = split_detector_checkpoint(read_checkpoint(spec))
    classes = Classes(list(meta["class_names"]), list(meta["category_ids"])) if "class_names" in meta else None
    model_config = meta.get("model") or None
    if PREDICTOR_PREFIX + "cls_score.weight" not in state_dict:
        raise DetectError(f"model.weights={spec} holds no Faster R-CNN box predictor "
                          f"({PREDICTOR_PREFIX}cls_score.weight); pass a detector checkpoint, not a backbone")
    weights = DetectorWeights(state_dict, classes, str(spec), model_config)
    if classes is None and weights.num_classes == len(COCO_CLASSES) + 1:
        weights.classes = COCO_CLASSES  # torchvision's COCO layout: 91 outputs, label = COCO category id
    return weights


def _first_mismatch(error: RuntimeError) -> str:
    """The first 'size mismatch for ...' line of load_state_dict's multi-line error."""
    lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
    return lines[0] if lines else str(error).splitlines()[0]


def build_backbone(cfg: Mapping[str, Any], load_weights: bool = True) -> BackboneWithFPN:
    """A torchvision ResNet with an FPN on layers 1-4 plus a max-pool level, as torchvision's R50-FPN.

    With `load_weights`, the ResNet starts from `cfg["weights"]` (ImageNet); without, from random weights.
    """
    name, norm, trainable = cfg["name"], cfg["norm"], int(cfg["trainable_layers"])
    if name not in BACKBONES:
        raise DetectError(f"model.backbone.name={name!r} is not a backbone; choose one of {', '.join(BACKBONES)}")
    if norm not in NORMS:
        raise DetectError(f"model.backbone.norm={norm!r} is not a norm; choose one of {', '.join(NORMS)}")
    if not 0 <= trainable <= 5:
        raise DetectError(f"model.backbone.trainable_layers={trainable} is out of range; choose 0 to 5")

    resnet = torchvision.models.get_model(name, weights=None, norm_layer=NORMS[norm])
    weights = cfg.get("weights") if load_weights else None
    if weights and _is_enum_name(weights):
        enum = _weight_enum(torchvision.models.get_model_weights(name), weights, "model.backbone.weights")
        resnet.load_state_dict(_download_state_dict(enum))
    elif weights:
        try:
            missing, unexpected = resnet.load_state_dict(read_checkpoint(weights), strict=False)
        except RuntimeError as error:  # tensor shapes that differ: another depth
            raise DetectError(f"model.backbone.weights={weights} is not a {name} state_dict ({_first_mismatch(error)})") from None
        if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
            raise DetectError(f"model.backbone.weights={weights} is not a {name} state_dict "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable] + (["bn1"] if trainable == 5 else [])
    for param_name, param in resnet.named_parameters():
        param.requires_grad_(param_name.startswith(tuple(trained)))

    stage2_channels = resnet.inplanes // 8  # 64 for basic blocks (R18/34), 256 for bottlenecks
    backbone = BackboneWithFPN(
        resnet,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[stage2_channels * 2**i for i in range(4)],
        out_channels=int(cfg["fpn_channels"]),
        extra_blocks=LastLevelMaxPool(),
    )
    if norm == "sync_bn":
        backbone = nn.SyncBatchNorm.convert_sync_batchnorm(backbone)
    return backbone


def build_model(cfg: Mapping[str, Any], num_classes: int, weights: DetectorWeights | None = None,
                pretrained_backbone: bool = True) -> FasterRCNN:
    """torchvision's FasterRCNN from the `model` config; `num_classes` counts the background class.

    With `weights`, everything is loaded from them but the box predictor when its class count differs, and the
    backbone's ImageNet weights are not read. `pretrained_backbone=False` skips those too (a resumed run).
    """
    backbone = build_backbone(cfg["backbone"], load_weights=pretrained_backbone and weights is None)
    anchor_sizes = tuple((int(size),) for size in cfg["anchor_sizes"])
    aspect_ratios = (tuple(float(r) for r in cfg["aspect_ratios"]),) * len(anchor_sizes)
    min_size = cfg["min_size"]
    rpn, roi = cfg["rpn"], cfg["roi"]
    model = FasterRCNN(
        backbone,
        num_classes=num_classes,
        min_size=int(min_size) if isinstance(min_size, int) else tuple(int(s) for s in min_size),
        max_size=int(cfg["max_size"]),
        rpn_anchor_generator=AnchorGenerator(anchor_sizes, aspect_ratios),
        rpn_pre_nms_top_n_train=rpn["pre_nms_top_n_train"],
        rpn_pre_nms_top_n_test=rpn["pre_nms_top_n_test"],
        rpn_post_nms_top_n_train=rpn["post_nms_top_n_train"],
        rpn_post_nms_top_n_test=rpn["post_nms_top_n_test"],
        rpn_nms_thresh=rpn["nms_thresh"],
        rpn_fg_iou_thresh=rpn["fg_iou_thresh"],
        rpn_bg_iou_thresh=rpn["bg_iou_thresh"],
        rpn_batch_size_per_image=rpn["batch_size_per_image"],
        rpn_positive_fraction=rpn["positive_fraction"],
        box_score_thresh=roi["score_thresh"],
        box_nms_thresh=roi["nms_thresh"],
        box_detections_per_img=roi["detections_per_img"],
        box_fg_iou_thresh=roi["fg_iou_thresh"],
        box_bg_iou_thresh=roi["bg_iou_thresh"],
        box_batch_size_per_image=roi["batch_size_per_image"],
        box_positive_fraction=roi["positive_fraction"],
    )
    representation_size = int(roi["representation_size"])
    if representation_size != 1024:  # torchvision's default box head is two 1024-wide fc layers
        resolution = model.roi_heads.box_roi_pool.output_size[0]
        model.roi_heads.box_head = TwoMLPHead(backbone.out_channels * resolution**2, representation_size)
        model.roi_heads.box_predictor = FastRCNNPredictor(representation_size, num_classes)
    if weights is not None:
        load_detector_weights(model, weights)
    return model


def load_detector_weights(model: FasterRCNN, weights: DetectorWeights) -> None:
    """Load `weights` into `model`; a box predictor for another class count is left as initialised."""
    state_dict = weights.state_dict
    if weights.num_classes != model.roi_heads.box_predictor.cls_score.out_features:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(PREDICTOR_PREFIX)}
    hint = "check model/backbone, model.backbone.fpn_channels and model.roi.representation_size"
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # tensor shapes that differ
        raise DetectError(f"weights {weights.source} do not fit this model ({_first_mismatch(error)}); {hint}") from None
    kept_predictor = len(state_dict) == len(weights.state_dict)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")
               and (kept_predictor or not k.startswith(PREDICTOR_PREFIX))]
    if missing or unexpected:
        raise DetectError(f"weights {weights.source} do not fit this model "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]}); {hint}")


def build_detector(weights: str | None, model_cfg: Mapping[str, Any], num_classes: int = len(COCO_CLASSES) + 1,
                   model_from_checkpoint: bool = True) -> tuple[FasterRCNN, Classes, Mapping[str, Any], str]:
    """The eval-mode detector of `weights` (None: random weights with `num_classes` outputs, background included):
    (model, classes, the model config it was built from, where its weights came from).

    A checkpoint of train.py brings its own model config (backbone, sizes, head) unless `model_from_checkpoint` is
    false; only the score threshold of `model_cfg` is kept then.
    """
    loaded = read_detector_weights(str(weights), model_cfg["backbone"]["name"]) if weights else None
    if loaded is not None:
        num_classes = loaded.num_classes
    classes = loaded.classes if loaded else None
    if classes is None:
        classes = COCO_CLASSES if num_classes == len(COCO_CLASSES) + 1 else Classes(
            [f"class {i}" for i in range(1, num_classes)], list(range(1, num_classes)))
    elif len(classes) != num_classes - 1:
        raise DetectError(f"weights {weights} name {len(classes)} classes but the box predictor has "
                          f"{num_classes - 1}; the checkpoint is inconsistent")
    if model_from_checkpoint and loaded is not None and loaded.model_config:
        model_cfg = OmegaConf.merge(loaded.model_config, {"roi": {"score_thresh": model_cfg["roi"]["score_thresh"]}})
    model = build_model(model_cfg, num_classes, loaded).eval()
    return model, classes, model_cfg, loaded.source if loaded else "random weights"
