"""Test helpers shared by the test modules: real configs composed from configs/, tiny COCO files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")

# Overrides that make any train config tiny: 128 px, few proposals, few images (seconds a step on 2 cores).
TINY = [
    "model/backbone=resnet18", "model.min_size=96", "model.max_size=128", "model.backbone.fpn_channels=32",
    "model.roi.representation_size=64", "model.roi.batch_size_per_image=32", "model.rpn.batch_size_per_image=64",
    "model.rpn.pre_nms_top_n_train=100", "model.rpn.post_nms_top_n_train=50", "model.rpn.pre_nms_top_n_test=50",
    "model.rpn.post_nms_top_n_test=20", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1",
    "callbacks.progress_bar.refresh_rate=0",
]


def compose_train(overrides: list[str], output_dir: Path = Path("outputs/tests")) -> DictConfig:
    """configs/train.yaml composed as train.py would, with `output_dir` set (no Hydra run directory here)."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
    return cfg


def synthetic_overrides(cache_dir: Path, num_train: int = 16, num_val: int = 8) -> list[str]:
    return [f"data.cache_dir={cache_dir}", f"data.num_train={num_train}", f"data.num_val={num_val}",
            "data.batch_size=4", "data.val_batch_size=4"]


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
