"""The model: every depth builds, R18 runs in train and eval mode, weights load from every kind of source."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from helpers import TINY, compose_train
from omegaconf import DictConfig

from detect.modeling.model import COCO_CLASSES, build_backbone, build_model, read_detector_weights
from detect.utils.errors import DetectError


def tiny_model_config(backbone: str = "resnet18", *overrides: str) -> DictConfig:
    return compose_train([o for o in TINY if o.startswith("model")] + [f"model/backbone={backbone}", *overrides]).model


def test_r18_trains_and_predicts_in_original_coordinates() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("resnet18", "model.backbone.trainable_layers=3"), num_classes=4)
    images = [torch.rand(3, 90, 120), torch.rand(3, 150, 100)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[5.0, 20.0, 40.0, 90.0], [50.0, 50.0, 90.0, 140.0]]),
                "labels": torch.tensor([2, 3])}]
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.body.layer4[0].conv1.weight.grad is not None
    assert model.backbone.body.conv1.weight.grad is None  # trainable_layers=3 freezes the stem and layer1

    model.eval().roi_heads.score_thresh = 0.0
    with torch.no_grad():
        outputs = model(images)
    for output, image in zip(outputs, images):
        boxes = output["boxes"]
        assert len(boxes) > 0 and set(output["labels"].tolist()) <= {1, 2, 3}
        # clipped to the resized image, then scaled back: within the original image, up to float rounding
        assert boxes[:, 2].max() <= image.shape[2] + 1e-3 and boxes[:, 3].max() <= image.shape[1] + 1e-3
        assert boxes[:, 2].max() > 0.6 * image.shape[2]  # original pixels, not the 96-128 px network input


@pytest.mark.parametrize(("backbone", "channels"), [("resnet18", 64), ("resnet34", 64), ("resnet50", 256),
                                                    ("resnet101", 256), ("resnet152", 256)])
def test_every_depth_builds_an_fpn(backbone: str, channels: int) -> None:
    fpn = build_backbone({"name": backbone, "weights": None, "trainable_layers": 0, "norm": "frozen_bn",
                          "fpn_channels": 32})
    assert fpn.fpn.inner_blocks[0][0].in_channels == channels and fpn.out_channels == 32
    assert not any(p.requires_grad for p in fpn.body.parameters())
    features = fpn(torch.rand(1, 3, 64, 64))
    assert list(features) == ["0", "1", "2", "3", "pool"]


def test_torchvision_state_dict_gives_torchvision_detections(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                     min_size=256, max_size=320)
    state_dict = reference.state_dict()
    for key, value in state_dict.items():  # random BN statistics and a confident classifier: real detections
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
        elif key.endswith("running_mean"):
            value.normal_(0, 0.1)
    state_dict["roi_heads.box_predictor.cls_score.weight"].mul_(300)
    reference.load_state_dict(state_dict)
    torch.save(state_dict, tmp_path / "fasterrcnn_resnet50_fpn.pth")

    weights = read_detector_weights(str(tmp_path / "fasterrcnn_resnet50_fpn.pth"), "resnet50")
    assert weights.classes == COCO_CLASSES and weights.num_classes == 91
    cfg = compose_train(["data=coco", "data.root=.", "model.min_size=256", "model.max_size=320"]).model
    ours = build_model(cfg, weights.num_classes, weights)
    image = [torch.rand(3, 200, 300, generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        expected = reference.eval()(image)[0]
        got = ours.eval()(image)[0]
    assert len(expected["boxes"]) > 5
    # torchvision's untrained model normalizes with BatchNorm2d (eval), ours with FrozenBatchNorm2d: the same
    # arithmetic in another order, so float rounding differs in the last digits
    torch.testing.assert_close(got["boxes"], expected["boxes"], rtol=0, atol=1e-2)
    torch.testing.assert_close(got["scores"], expected["scores"], rtol=0, atol=1e-4)
    assert torch.equal(got["labels"], expected["labels"])


def test_our_checkpoint_carries_classes_and_a_new_class_count_gets_a_fresh_predictor(tmp_path: Path) -> None:
    cfg = tiny_model_config()
    trained = build_model(cfg, num_classes=3)
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
                  "detect": {"class_names": ["cat", "dog"], "category_ids": [17, 18], "model": {}}}
    torch.save(checkpoint, tmp_path / "best.ckpt")
    weights = read_detector_weights(str(tmp_path / "best.ckpt"), "resnet18")
    assert weights.classes.names == ["cat", "dog"] and weights.classes.category_ids == [17, 18]

    same = build_model(cfg, num_classes=3, weights=weights)
    assert torch.equal(same.roi_heads.box_predictor.cls_score.weight, trained.roi_heads.box_predictor.cls_score.weight)
    more = build_model(cfg, num_classes=6, weights=weights)
    assert more.roi_heads.box_predictor.cls_score.out_features == 6
    assert torch.equal(more.backbone.body.layer1[0].conv1.weight, trained.backbone.body.layer1[0].conv1.weight)


def test_bad_weights_get_a_readable_error(tmp_path: Path) -> None:
    r50 = build_model(tiny_model_config("resnet50"), num_classes=3)
    torch.save(r50.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(DetectError, match="do not fit this model.*model/backbone"):
        build_model(tiny_model_config("resnet18"), 3, read_detector_weights(str(tmp_path / "r50.pth"), "resnet18"))
    with pytest.raises(DetectError, match="COCO detector weights for resnet50 only"):
        read_detector_weights("COCO_V1", "resnet18")
    with pytest.raises(DetectError, match="not a FasterRCNN_ResNet50_FPN_Weights name; choose one of DEFAULT, COCO_V1"):
        read_detector_weights("COCO_V9", "resnet50")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DetectError, match="junk.pth could not be read"):
        read_detector_weights(str(tmp_path / "junk.pth"), "resnet18")
    with pytest.raises(DetectError, match="missing.ckpt does not exist"):
        read_detector_weights(str(tmp_path / "missing.ckpt"), "resnet18")


def test_backbone_weights_from_a_local_imagenet_file(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    fpn = build_backbone({"name": "resnet18", "weights": str(tmp_path / "resnet18.pth"), "trainable_layers": 3,
                          "norm": "frozen_bn", "fpn_channels": 32})
    torch.testing.assert_close(fpn.body.layer2[0].conv1.weight, resnet.layer2[0].conv1.weight)
    torch.testing.assert_close(fpn.body.bn1.running_var, resnet.bn1.running_var)
    with pytest.raises(DetectError, match="is not a resnet50 state_dict"):
        build_backbone({"name": "resnet50", "weights": str(tmp_path / "resnet18.pth"), "trainable_layers": 3,
                        "norm": "frozen_bn", "fpn_channels": 32})
