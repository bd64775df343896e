"""Where a detector's weights come from, all read with `weights_only=True`:
- torchvision's published weights by enum name (`COCO_V1` for the R50 detector, `IMAGENET1K_V1` for a backbone),
  read from the torch hub cache (`$TORCH_HOME/hub/checkpoints/<file>`) or downloaded there once; a failed download
  is one line with the URL and the exact file to place, a corrupt cached file another;
- a checkpoint written by train.py (its class names, category ids and model config travel with it);
- a plain state_dict, torchvision's `fasterrcnn_resnet50_fpn` one included (COCO classes then), or one wrapped by
  another toolkit (torchvision's reference script, Lightning, DataParallel: `split_detector_checkpoint`).
Also the box predictor's rows matched by class name when the weights were trained on other classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torchvision.models import WeightsEnum

from detect.modeling.checkpoint import PREDICTOR_PREFIX, read_checkpoint, split_detector_checkpoint
from detect.structures import Classes
from detect.utils.errors import DetectError, first_line

# torchvision publishes a COCO-trained Faster R-CNN for R50-FPN only.
DETECTOR_WEIGHT_ENUMS = {"resnet50": torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights}
COCO_CLASS_NAMES = list(DETECTOR_WEIGHT_ENUMS["resnet50"].COCO_V1.meta["categories"][1:])  # label i = COCO id i
PREDICTOR_ROWS = {"cls_score": 1, "bbox_pred": 4}  # rows per class (background first) of each predictor layer


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


def is_enum_name(spec: str) -> bool:
    """A torchvision weight enum name (COCO_V1, IMAGENET1K_V1, DEFAULT) rather than a file."""
    return not Path(spec).suffix and "/" not in spec and not Path(spec).exists()


def weight_enum(enum_class: type[WeightsEnum], name: str, key: str) -> WeightsEnum:
    """`enum_class[name]`, or one line naming `key` and the names allowed."""
    try:
        return enum_class[name]
    except KeyError:
        allowed = ", ".join(["DEFAULT", *(member for member in enum_class.__members__ if member != "DEFAULT")])
        raise DetectError(f"{key}={name!r} is not a {enum_class.__name__} name; choose one of {allowed} "
                          "or a file path") from None


def hub_file(weights: WeightsEnum) -> Path:
    """The file torch.hub keeps `weights` in: `$TORCH_HOME/hub/checkpoints/<the URL's file name>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def torchvision_state_dict(weights: WeightsEnum, what: str, instead: str) -> dict[str, torch.Tensor]:
    """The state_dict of torchvision's `weights`: its cached file, downloaded first when absent.

    `what` names the setting that asked for them (`model.weights=COCO_V1`); `instead` ends the message of a failed
    download (e.g. the override that trains from scratch)."""
    path = hub_file(weights)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(path), progress=True)  # a temporary file, then a rename
        except Exception as error:  # URLError, HTTPError, socket and disk errors all mean the same to the user
            raise DetectError(f"{what} needs {weights.url}, which could not be downloaded "
                              f"({first_line(error)}); offline, place that file at {path} "
                              f"($TORCH_HOME/hub/checkpoints/{path.name}), or {instead}") from None
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict):
            raise TypeError(f"it holds a {type(state_dict).__name__}, not a state_dict")
    except Exception as error:  # truncated or foreign files raise several types
        raise DetectError(f"{what}: the cached file {path} is corrupt ({first_line(error)}); "
                          f"delete it to download it again from {weights.url}, or put a good copy there") from None
    return state_dict


def read_detector_weights(spec: str, backbone_name: str, instead: str = "pass a local checkpoint file",
                          what: str | None = None) -> DetectorWeights:
    """Read detector weights from a torchvision enum name, one of our checkpoints or a plain state_dict, maybe
    wrapped by another toolkit (its layout then ends the source: "x.pth: torchvision reference checkpoint, ...";
    `what` and `instead`: as `torchvision_state_dict`)."""
    if is_enum_name(spec):
        if backbone_name not in DETECTOR_WEIGHT_ENUMS:
            raise DetectError(f"model.weights={spec!r}: torchvision has COCO detector weights for resnet50 only; "
                              f"for {backbone_name} pass a local checkpoint file")
        weights = weight_enum(DETECTOR_WEIGHT_ENUMS[backbone_name], spec, "model.weights")
        return DetectorWeights(torchvision_state_dict(weights, what or f"model.weights={spec}", instead), COCO_CLASSES,
                               f"torchvision {weights} ({hub_file(weights)})")
    state_dict, meta, layout = split_detector_checkpoint(read_checkpoint(spec))
    classes = Classes(list(meta["class_names"]), list(meta["category_ids"])) if "class_names" in meta else None
    model_config = meta.get("model") or None
    if PREDICTOR_PREFIX + "cls_score.weight" not in state_dict:
        raise DetectError(f"model.weights={spec} holds no Faster R-CNN box predictor "
                          f"({PREDICTOR_PREFIX}cls_score.weight); pass a detector checkpoint, not a backbone")
    weights = DetectorWeights(state_dict, classes, f"{spec}: {layout}" if layout else str(spec), model_config)
    if classes is None and weights.num_classes == len(COCO_CLASSES) + 1:
        weights.classes = COCO_CLASSES  # torchvision's COCO layout: 91 outputs, label = COCO category id
    return weights


def read_backbone_weights(spec: str, name: str, instead: str = "pass a local state_dict file",
                          what: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(state_dict, where it came from) of the ResNet `name`: a torchvision enum name or a state_dict file (`what`
    and `instead`: as `torchvision_state_dict`)."""
    if is_enum_name(spec):
        weights = weight_enum(torchvision.models.get_model_weights(name), spec, "model.backbone.weights")
        state_dict = torchvision_state_dict(weights, what or f"model.backbone.weights={spec}", instead)
        return state_dict, f"torchvision {weights} ({hub_file(weights)})"
    return read_checkpoint(spec), str(spec)


def match_predictor_rows(weights: DetectorWeights, classes: Classes | None,
                         initialised: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state_dict to load into a model of `classes` whose freshly initialised box predictor is `initialised`
    (its `PREDICTOR_PREFIX` keys), and a line saying what became of the predictor (None: loaded as it is).

    Weights trained on other classes keep the background row and the rows of the classes present in both (same
    name); the other rows keep their initial values. Without class names on either side the predictor is loaded
    when the class counts agree, else initialised whole."""
    count = initialised[PREDICTOR_PREFIX + "cls_score.weight"].shape[0]
    named = weights.classes is not None and classes is not None
    if (named and weights.classes.names == classes.names) or (not named and weights.num_classes == count):
        return weights.state_dict, None
    state_dict = {k: v for k, v in weights.state_dict.items() if not k.startswith(PREDICTOR_PREFIX)}
    counts = f"{weights.num_classes - 1} -> {count - 1} classes"
    if not named:
        return state_dict | initialised, f"box predictor initialised ({counts})"
    source_names = weights.classes.names
    kept = [name for name in classes.names if name in source_names]
    lists = f"(weights: {_names(weights.classes)}; this run: {_names(classes)})"
    if not kept:
        return state_dict | initialised, f"box predictor initialised ({counts}, none of the same name) {lists}"
    source_labels = {0: 0} | {label: source_names.index(name) + 1 for label, name in enumerate(classes.names, 1)
                              if name in source_names}
    for key, value in initialised.items():
        rows = PREDICTOR_ROWS[key.removeprefix(PREDICTOR_PREFIX).split(".")[0]]
        state_dict[key] = value.clone()
        for label, source_label in source_labels.items():
            state_dict[key][label * rows:(label + 1) * rows] = \
                weights.state_dict[key][source_label * rows:(source_label + 1) * rows]
    return state_dict, (f"box predictor ({counts}): rows of the background and {', '.join(kept)} kept, "
                        f"{count - 1 - len(kept)} initialised {lists}")


def _names(classes: Classes, limit: int = 8) -> str:
    """Up to `limit` class names, and how many more."""
    more = f", ... {len(classes) - limit} more" if len(classes) > limit else ""
    return ", ".join(classes.names[:limit]) + more
