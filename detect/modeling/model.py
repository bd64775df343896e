"""Faster R-CNN with a ResNet-FPN backbone of any depth, built from the `model` config group, and the weights of
`detect.modeling.weights` loaded into it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from detect.modeling.weights import (
    COCO_CLASSES,
    PREDICTOR_PREFIX,
    DetectorWeights,
    match_predictor_rows,
    read_backbone_weights,
    read_detector_weights,
)
from detect.structures import Classes
from detect.utils.errors import DetectError, check_choice, first_line

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
NORMS = {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "sync_bn": nn.BatchNorm2d}
SYNC_BN_NEEDS_GPUS = "model.backbone.norm=sync_bn needs GPUs: torch's SyncBatchNorm refuses CPU tensors"
DetectorOutput = dict[str, torch.Tensor]  # one image's boxes (xyxy), labels (1..K) and scores
# what runs a detector, as torchvision's FasterRCNN in eval mode: RGB 3xHxW float images in 0..1 -> their outputs
DetectorCall = Callable[[list[torch.Tensor]], list[DetectorOutput]]
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")  # trainable_layers counts from layer4; stem: conv1 + bn1


def frozen_stages(trainable_layers: int) -> list[str]:
    """The ResNet stages `trainable_layers` (0-5, counted from layer4) leaves frozen, stem first."""
    return list(STAGES[:len(STAGES) - trainable_layers])


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d in it (itself included) turned into a FrozenBatchNorm2d of the same statistics
    and affine: a frozen stage keeps its normalisation fixed in training too (Detectron2's freeze)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(frozen, key).copy_(getattr(module, key).detach())
        return frozen
    for name, child in module.named_children():
        setattr(module, name, freeze_batch_norms(child))
    return module


def build_backbone(cfg: Mapping[str, Any], load_weights: bool = True,
                   state_dict: Mapping[str, torch.Tensor] | None = None) -> BackboneWithFPN:
    """A torchvision ResNet with an FPN on layers 1-4 plus a max-pool level, as torchvision's R50-FPN.

    The ResNet starts from `state_dict` when given, else with `load_weights` from `cfg["weights"]` (ImageNet), else
    from random weights. Frozen stages have frozen batch norms whatever the norm.
    """
    name, norm, trainable = cfg["name"], cfg["norm"], int(cfg["trainable_layers"])
    if name not in BACKBONES:
        raise DetectError(f"model.backbone.name={name!r} is not a backbone; choose one of {', '.join(BACKBONES)}")
    if norm not in NORMS:
        raise DetectError(f"model.backbone.norm={norm!r} is not a norm; choose one of {', '.join(NORMS)}")
    if not 0 <= trainable <= 5:
        raise DetectError(f"model.backbone.trainable_layers={trainable} is out of range; choose 0 to 5")

    resnet = torchvision.models.get_model(name, weights=None, norm_layer=NORMS[norm])
    source = cfg.get("weights")
    if state_dict is None and load_weights and source:
        state_dict, source = read_backbone_weights(source, name)
    if state_dict is not None:
        try:
            missing, unexpected = resnet.load_state_dict(state_dict, strict=False)
        except RuntimeError as error:  # tensor shapes that differ: another depth
            raise DetectError(f"model.backbone.weights={source} is not a {name} state_dict "
                              f"({first_line(error, typed=False)})") from None
        if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
            raise DetectError(f"model.backbone.weights={source} is not a {name} state_dict "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    for stage in frozen_stages(trainable):
        for name in ("conv1", "bn1") if stage == "stem" else (stage,):
            setattr(resnet, name, freeze_batch_norms(getattr(resnet, name).requires_grad_(False)))

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
                pretrained_backbone: bool = True,
                backbone_weights: Mapping[str, torch.Tensor] | None = None) -> FasterRCNN:
    """torchvision's FasterRCNN from the `model` config; `num_classes` counts the background class.

    With `weights`, everything is loaded from them (the box predictor as `load_detector_weights` says), and the
    backbone's ImageNet weights are not read. Else the backbone starts from `backbone_weights` when given, else from
    `model.backbone.weights` unless `pretrained_backbone` is false (a resumed run).
    """
    backbone = build_backbone(cfg["backbone"], load_weights=pretrained_backbone and weights is None,
                              state_dict=backbone_weights)
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


def load_detector_weights(model: FasterRCNN, weights: DetectorWeights, classes: Classes | None = None) -> str | None:
    """Load `weights` into `model` (trained on `classes` when known): rows of the box predictor are matched by class
    name (`detect.modeling.weights.match_predictor_rows`). Returns what became of the predictor (None: loaded as it is)."""
    initialised = {PREDICTOR_PREFIX + k: v for k, v in model.roi_heads.box_predictor.state_dict().items()}
    hint = "check model/backbone, model.backbone.fpn_channels and model.roi.representation_size"
    try:
        state_dict, predictor = match_predictor_rows(weights, classes, initialised)
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # tensor shapes that differ
        raise DetectError(f"weights {weights.source} do not fit this model ({first_line(error, typed=False)}); "
                          f"{hint}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise DetectError(f"weights {weights.source} do not fit this model "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]}); {hint}")
    return predictor


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


def check_model_config(model: DictConfig) -> None:
    """Backbone name and norm known, sizes and thresholds in range."""
    check_choice("model.backbone.name", model.backbone.name, BACKBONES)
    check_choice("model.backbone.norm", model.backbone.norm, tuple(NORMS))
    min_sizes = model.min_size if OmegaConf.is_list(model.min_size) else [model.min_size]
    if min(min_sizes) <= 0 or model.max_size < max(min_sizes):
        raise DetectError(f"model.min_size={model.min_size} / model.max_size={model.max_size}: need 0 < min_size "
                          "<= max_size")
    if not 0.0 <= model.roi.score_thresh < 1.0:
        raise DetectError(f"model.roi.score_thresh={model.roi.score_thresh} must be in [0, 1)")
