"""Where training starts: `pretrained` per backbone from torchvision's cache files (no network), the one-line errors
of a missing download and a corrupt file (before any data work), the from-scratch switch, frozen stages with frozen
batch norms, a checkpoint's own model config, box predictor rows matched by class name."""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import TINY, compose_train, write_checkpoint
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

from detect.engine.initial_weights import resolve_initial_weights
from detect.engine.training import run
from detect.modeling.model import build_model, load_detector_weights
from detect.modeling.weights import DetectorWeights
from detect.structures import Classes
from detect.utils.errors import DetectError

TINY_MODEL = [o for o in TINY if o.startswith("model") and not o.startswith("model/backbone")]
CLASSES = Classes(["square", "disc", "triangle"], [1, 2, 4])


def custom_data(folder: Path) -> list[str]:
    """data=custom pointing at files that do not exist: reading any of them would fail with a data error."""
    return ["data=custom", f"data.train_json={folder}/none.json", f"data.train_images={folder}",
            f"data.val_json={folder}/none.json", f"data.val_images={folder}"]


def cache_file(torch_home: Path, url: str) -> Path:
    """Where torch.hub keeps the file of `url` under TORCH_HOME (the URL's file name, as torchvision names it)."""
    return torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty TORCH_HOME and no network: every download or socket connection attempted is recorded and fails."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(str(args[:2]))
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_pretrained_is_the_coco_detector_for_r50_read_from_the_cache_file(tmp_path: Path, offline: list[str]) -> None:
    weights = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    torch.manual_seed(0)
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = cache_file(tmp_path / "torch", weights.url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    initial = resolve_initial_weights(compose_train([*custom_data(tmp_path), "model/backbone=resnet50"]))
    model = initial.build(CLASSES)
    assert offline == []  # found in the cache: no download, no connection
    assert f"weights: the whole detector from torchvision {weights} ({path})" in initial.lines
    assert any(line.startswith("weights: box predictor initialised (90 -> 3 classes, none of the same name) "
                               "(weights: person, bicycle") and "this run: square, disc, triangle" in line
               for line in initial.lines)
    assert ("weights: backbone stages frozen: stem, layer1 (model.backbone.trainable_layers=3); norm frozen_bn"
            in initial.lines)
    assert torch.equal(model.backbone.body.layer3[0].conv1.weight, reference.backbone.body.layer3[0].conv1.weight)
    assert torch.equal(model.rpn.head.conv[0][0].weight, reference.rpn.head.conv[0][0].weight)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4


def test_pretrained_is_the_imagenet_backbone_elsewhere_and_coco_trains_from_imagenet(tmp_path: Path,
                                                                                   offline: list[str]) -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    resnet = torchvision.models.resnet18()
    path = cache_file(tmp_path / "torch", weights.url)
    path.parent.mkdir(parents=True)
    torch.save(resnet.state_dict(), path)

    initial = resolve_initial_weights(compose_train([*custom_data(tmp_path), "model/backbone=resnet18", *TINY_MODEL]))
    model = initial.build(CLASSES)
    assert offline == []
    assert initial.lines[0] == (f"weights: backbone resnet18 from torchvision {weights} ({path}); FPN, RPN and box "
                                "head initialised at random")
    assert torch.equal(model.backbone.body.layer2[0].conv1.weight, resnet.layer2[0].conv1.weight)
    assert initial.model_config["backbone"]["weights"] == "IMAGENET1K_V1"  # what the checkpoint will record
    assert compose_train(["data=coco", f"data.root={tmp_path}"]).model.weights == "imagenet"  # Detectron2's recipe
    assert compose_train([]).model.weights is None  # the demo: from scratch, no download


def test_a_missing_download_fails_first_in_one_line(tmp_path: Path, offline: list[str]) -> None:
    url = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url
    with pytest.raises(DetectError) as error:  # the data paths do not exist either: the weights were checked first
        run(compose_train([*custom_data(tmp_path), "model/backbone=resnet50"], tmp_path / "run"))
    message = str(error.value)
    assert message.startswith(f"model.weights=pretrained (resnet50: COCO_V1) needs {url}, which could not be "
                              "downloaded")
    assert f"place that file at {cache_file(tmp_path / 'torch', url)} " in message
    assert message.endswith("or train from scratch with model.weights=null") and "\n" not in message
    assert len(offline) == 1

    path = cache_file(tmp_path / "torch", torchvision.models.ResNet101_Weights.IMAGENET1K_V1.url)
    path.write_bytes(b"half a download")
    with pytest.raises(DetectError, match=rf"^model.weights=pretrained \(resnet101: imagenet\): the cached file {path} "
                                          r"is corrupt \(.*\); delete it to download it again from https://"):
        run(compose_train([*custom_data(tmp_path), "model/backbone=resnet101"], tmp_path / "run"))


def test_from_scratch_trains_every_stage_with_batch_norm(tmp_path: Path, offline: list[str]) -> None:
    initial = resolve_initial_weights(compose_train([*custom_data(tmp_path), "model.weights=null"]))
    backbone = initial.model_config["backbone"]
    assert backbone["trainable_layers"] == 5 and backbone["norm"] == "bn"
    assert initial.lines[1] == ("weights: from scratch, so model.backbone.trainable_layers 3 -> 5 and norm frozen_bn "
                                "-> bn (a frozen random stage never learns, an unloaded frozen_bn normalises nothing)")
    assert offline == []


def test_frozen_stages_keep_their_batch_norm_statistics() -> None:
    cfg = compose_train([*TINY_MODEL, "model/backbone=resnet18", "model.backbone.norm=bn",
                         "model.backbone.trainable_layers=3"]).model
    model = build_model(cfg, num_classes=4).train()
    body = model.backbone.body
    before = {name: body.get_submodule(name).running_mean.clone() for name in ("bn1", "layer1.0.bn1", "layer2.0.bn1")}
    model([torch.rand(3, 96, 128)], [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}])
    assert torch.equal(body.bn1.running_mean, before["bn1"])  # the stem and layer1 are frozen
    assert torch.equal(body.layer1[0].bn1.running_mean, before["layer1.0.bn1"])
    assert not torch.equal(body.layer2[0].bn1.running_mean, before["layer2.0.bn1"])  # layer2 trains


def test_a_checkpoint_brings_its_model_config_and_classes_are_matched_by_name(tmp_path: Path) -> None:
    demo = compose_train([*TINY_MODEL, "model/backbone=resnet18"]).model
    write_checkpoint(tmp_path / "best.ckpt", demo, CLASSES)
    cfg = compose_train([*custom_data(tmp_path), f"model.weights={tmp_path / 'best.ckpt'}"])  # R50 at 800 px
    initial = resolve_initial_weights(cfg)
    assert initial.model_config["backbone"]["name"] == "resnet18" and initial.model_config["min_size"] == 96
    assert initial.model_config["weights"] == str(tmp_path / "best.ckpt")
    assert initial.lines[1].startswith(f"weights: model config from {tmp_path / 'best.ckpt'}, not this run's "
                                       "(backbone.name resnet50 -> resnet18, ")

    model = initial.build(Classes(["disc", "ring"], [2, 5]))
    source = initial.detector.state_dict
    predictor = model.roi_heads.box_predictor
    assert torch.equal(predictor.cls_score.weight[[0, 1]], source["roi_heads.box_predictor.cls_score.weight"][[0, 2]])
    assert torch.equal(predictor.bbox_pred.bias[4:8], source["roi_heads.box_predictor.bbox_pred.bias"][8:12])
    assert not torch.equal(predictor.cls_score.weight[2], source["roi_heads.box_predictor.cls_score.weight"][3])
    assert initial.lines[-1] == ("weights: box predictor (3 -> 2 classes): rows of the background and disc kept, "
                                 "1 initialised (weights: square, disc, triangle; this run: disc, ring)")


def test_unnamed_weights_keep_the_predictor_only_for_the_same_class_count() -> None:
    cfg = compose_train([*TINY_MODEL, "model/backbone=resnet18"]).model
    source = build_model(cfg, num_classes=4).state_dict()
    weights = DetectorWeights(source, None, "plain.pth")
    same = build_model(cfg, num_classes=4)
    assert load_detector_weights(same, weights, CLASSES) is None
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(same.roi_heads.box_predictor.cls_score.weight, source[key])
    unnamed = load_detector_weights(build_model(cfg, num_classes=3), weights)
    assert unnamed == "box predictor initialised (3 -> 2 classes)"
