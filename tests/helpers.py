"""Test helpers shared by the test modules: real configs composed from configs/, tiny COCO files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from detect.config import compose
from detect.modeling.checkpoint import detector_metadata
from detect.modeling.model import build_model
from detect.structures import Classes

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")

# Overrides that make any train config tiny: 128 px, few proposals, few images (seconds a step on 2 cores).
TINY = [
    "model/backbone=resnet18", "model.min_size=96", "model.max_size=128", "model.backbone.fpn_channels=32",
    "model.roi.representation_size=64", "model.roi.batch_size_per_image=32", "model.rpn.batch_size_per_image=64",
    "model.rpn.pre_nms_top_n_train=100", "model.rpn.post_nms_top_n_train=50", "model.rpn.pre_nms_top_n_test=50",
    "model.rpn.post_nms_top_n_test=20", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1",
    "callbacks.progress_bar.refresh_rate=0", "plots=false",
]


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """configs/<config_name>.yaml composed as its entry point would, with `output_dir` set (no Hydra run directory)."""
    return compose(config_name, overrides, output_dir)


def compose_train(overrides: list[str], output_dir: Path = Path("outputs/tests")) -> DictConfig:
    """configs/train.yaml composed as train.py would."""
    return compose_config("train", overrides, output_dir)


def synthetic_overrides(cache_dir: Path, num_train: int = 16, num_val: int = 8) -> list[str]:
    return [f"data.cache_dir={cache_dir}", f"data.num_train={num_train}", f"data.num_val={num_val}",
            "data.batch_size=4", "data.val_batch_size=4", "optim.reference_batch=4"]  # the tests' lrs are for 4


def write_coco(folder: Path, images: list[dict], annotations: list[dict], categories: list[dict],
               name: str = "ann.json") -> Path:
    """Write `images` as real PNG files (random pixels, their sizes) and the annotation json; return its path."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for image in images:
        pixels = rng.integers(0, 255, size=(image["height"], image["width"], 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "images" / image["file_name"]), pixels)
    path = folder / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"
needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason=f"{VIDEO} is absent (the shared data beside the checkout)")
# A Faster R-CNN that runs a 720p frame in tens of milliseconds: short side 128 (long side <= 192). One torch
# thread: a tiny model gains nothing from two, and two OpenMP threads stall badly when another process shares the CPU.
TINY_INFER = ["threads=1", "model/backbone=resnet18", "model.min_size=128", "model.max_size=192",
              "model.backbone.fpn_channels=32", "model.roi.representation_size=64", "model.rpn.pre_nms_top_n_test=100",
              "model.rpn.post_nms_top_n_test=30", "model.roi.detections_per_img=20", "progress=false",
              "warmup_frames=1"]


def compose_infer(overrides: list[str], output_dir: Path) -> DictConfig:
    """configs/infer.yaml as infer.py composes it, with the tiny model."""
    return compose_config("infer", [*TINY_INFER, *overrides], output_dir)


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (96, 128)) -> list[Path]:
    """Random-pixel images named `names` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for name in names:
        path = folder / name
        cv2.imwrite(str(path), rng.integers(0, 255, size=(*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


TINY_CLASSES = Classes(["cat", "dog"], [17, 42])  # the tiny inference model's (tiny_checkpoint): ids not 1..K


def write_checkpoint(path: Path, model_cfg: DictConfig, classes: Classes) -> None:
    """A checkpoint as train.py writes it: Lightning's state_dict with "model." keys, class metadata under "detect"."""
    torch.manual_seed(0)
    model = build_model(model_cfg, len(classes) + 1)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                **detector_metadata(classes.names, classes.category_ids,
                                    OmegaConf.to_container(model_cfg, resolve=True))}, path)


def write_clip(path: Path, frames: int = 10, size: tuple[int, int] = (96, 128), fps: float = 10.0) -> Path:
    """A short video (MJPG .avi, decoded by OpenCV) of a bright square moving right over a dark noisy background."""
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    rng = np.random.default_rng(0)
    for index in range(frames):
        image = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
        x = 5 + index * 6
        image[30:60, x:x + 30] = (40, 200, 240)
        writer.write(image)
    writer.release()
    return path


class BrightSquare:
    """A backend that boxes write_clip's bright square wherever it is (the part of it in an image; nothing where none
    is): the same detections for a frame in any run. `calls` keeps the number of images of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls.append(len(images))
        outputs = []
        for image in images:
            ys, xs = torch.nonzero(image[1] > 0.5, as_tuple=True)
            found = len(xs) > 0
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None] if found else \
                torch.zeros(0, 4)
            outputs.append({"boxes": box, "labels": torch.ones(len(box), dtype=torch.long),
                            "scores": torch.full((len(box),), 0.9)})
        return outputs


def off_slurm_environment(folder: Path) -> dict[str, str]:
    """This process's environment as on a machine with SLURM installed (an `srun` in `folder`, first on PATH) but
    outside any SLURM job (no SLURM_* variable)."""
    srun = folder / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("SLURM_")}
    return environment | {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}
