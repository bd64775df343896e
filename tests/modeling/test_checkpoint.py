"""Checkpoints of the toolkits people come from: a detector's state_dict saved in each common layout (torchvision's
detection reference script, Lightning projects, a bare {"state_dict": ...}, DataParallel) loads through the real
loader with its layout named; files with no detector and folders are refused in one line naming what to pass."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import compose_infer, write_images
from omegaconf import DictConfig

from detect.inference import Detector
from detect.inference.pipeline import infer
from detect.modeling.model import build_detector, build_model
from detect.utils.errors import DetectError

StateDict = dict[str, torch.Tensor]


def prefixed(prefix: str, state_dict: StateDict) -> StateDict:
    return {prefix + key: value for key, value in state_dict.items()}


def reference(state_dict: StateDict) -> dict:
    """As torchvision's references/detection/train.py saves a checkpoint every epoch."""
    return {"model": state_dict, "optimizer": {"state": {}, "param_groups": [{"lr": 0.02, "params": [0]}]},
            "lr_scheduler": {"milestones": {16: 1}}, "epoch": 25,
            "args": argparse.Namespace(data_path="/coco", lr=0.02, lr_steps=[16, 22], weights=None)}


def lightning(state_dict: StateDict, prefix: str) -> dict:
    """A Lightning checkpoint of another project, its detector kept as `self.<prefix>` of the LightningModule."""
    return {"state_dict": prefixed(prefix, state_dict), "pytorch-lightning_version": "2.4.0", "epoch": 3,
            "global_step": 120, "optimizer_states": [], "lr_schedulers": [], "hyper_parameters": {"lr": 0.01}}


# layout: (how it wraps a detector's state_dict, how the loader names it)
LAYOUTS: dict[str, tuple[Callable[[StateDict], dict], str]] = {
    "torchvision reference": (reference, "torchvision reference checkpoint, weights under 'model'"),
    "reference of a DDP model": (lambda sd: reference(prefixed("module.", sd)),
                                 "torchvision reference checkpoint, weights under 'model', prefix 'module.'"),
    "Lightning model.": (lambda sd: lightning(sd, "model."),
                         "Lightning checkpoint, weights under 'state_dict', prefix 'model.'"),
    "Lightning net.": (lambda sd: lightning(sd, "net."),
                       "Lightning checkpoint, weights under 'state_dict', prefix 'net.'"),
    "state_dict wrapper": (lambda sd: {"state_dict": sd}, "checkpoint, weights under 'state_dict'"),
    "DataParallel": (lambda sd: prefixed("module.", sd), "DataParallel state_dict, prefix 'module.'"),
}


@pytest.fixture(scope="module")
def tiny_model() -> DictConfig:
    return compose_infer(["source=x"], Path("unused")).model


def detector_state_dict(model_cfg: DictConfig, seed: int = 1) -> StateDict:
    torch.manual_seed(seed)
    return build_model(model_cfg, num_classes=3).state_dict()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_its_weights_and_is_named(tmp_path: Path, tiny_model: DictConfig, layout: str) -> None:
    wrap, name = LAYOUTS[layout]
    state_dict = detector_state_dict(tiny_model)
    path = tmp_path / "other.pth"
    torch.save(wrap(state_dict), path)
    model, classes, _, source = build_detector(str(path), tiny_model)
    assert source == f"{path}: {name}"
    assert len(classes) == 2  # the box predictor's 3 outputs, background included
    loaded = model.state_dict()
    for key in ("backbone.body.conv1.weight", "roi_heads.box_predictor.cls_score.weight", "rpn.head.conv.0.0.weight"):
        assert torch.equal(loaded[key], state_dict[key]), key


def test_a_bare_state_dict_and_a_checkpoint_of_train_py_name_no_layout(tmp_path: Path, tiny_model: DictConfig) -> None:
    torch.save(detector_state_dict(tiny_model), tmp_path / "plain.pth")
    assert build_detector(str(tmp_path / "plain.pth"), tiny_model)[3] == str(tmp_path / "plain.pth")


def test_infer_header_names_the_layout(tmp_path: Path, tiny_model: DictConfig) -> None:
    torch.save(reference(detector_state_dict(tiny_model)), tmp_path / "model_25.pth")
    write_images(tmp_path / "in", ["a.png"])
    summary = infer(compose_infer([f"source={tmp_path / 'in'}", f"weights={tmp_path / 'model_25.pth'}",
                                   "save=false"], tmp_path / "out"))
    assert summary["model"].endswith("model_25.pth: torchvision reference checkpoint, weights under 'model')")


@pytest.mark.parametrize("content", [
    lambda sd: reference({k: v for k, v in sd.items() if k.startswith("backbone.")}),  # a backbone only
    lambda sd: {"epoch": 3, "optimizer": {}},
])
def test_a_file_with_no_detector_is_refused(tmp_path: Path, tiny_model: DictConfig,
                                            content: Callable[[StateDict], dict]) -> None:
    torch.save(content(detector_state_dict(tiny_model)), tmp_path / "x.pth")
    with pytest.raises(DetectError, match="x.pth holds no Faster R-CNN box predictor .*pass a detector checkpoint"):
        build_detector(str(tmp_path / "x.pth"), tiny_model)


@pytest.mark.parametrize(("files", "advice"), [
    (["checkpoints/best.ckpt", "checkpoints/last.ckpt", ".hydra/config.yaml"],
     "pass the checkpoint it holds: {folder}/checkpoints/best.ckpt"),
    (["model.pth", "notes.txt"], "pass the checkpoint it holds: {folder}/model.pth"),
    (["a.pt", "b.pt"], r"pass one of the 2 it holds \(a.pt, b.pt\)"),
    (["notes.txt"], r"pass a .ckpt/.pt/.pth file \(it holds none\)"),
])
def test_a_folder_as_weights_says_so_and_names_its_checkpoint(tmp_path: Path, files: list[str], advice: str) -> None:
    folder = tmp_path / "run"
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    with pytest.raises(DetectError) as raised:
        Detector.load(folder)
    message = str(raised.value)
    assert message.startswith(f"checkpoint {folder} is a folder, not a checkpoint file; "), message
    assert re.search(advice.format(folder=folder), message), message
