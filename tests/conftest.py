"""Shared fixtures: a tiny COCO dataset on disk and real configs composed from configs/."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
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


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cache")


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


@pytest.fixture
def gappy_coco(tmp_path: Path) -> Path:
    """COCO json with category ids 3, 17, 90, a crowd box, a degenerate box, a box past the border, an empty image."""
    images = [{"id": 10, "file_name": "a.png", "width": 64, "height": 48},
              {"id": 11, "file_name": "b.png", "width": 40, "height": 60},
              {"id": 12, "file_name": "c.png", "width": 50, "height": 50}]
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 17, "bbox": [4, 5, 20, 10], "area": 200, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 90, "bbox": [30, 20, 30, 40], "area": 1200, "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 60, 40], "area": 2400, "iscrowd": 1},
        {"id": 4, "image_id": 11, "category_id": 3, "bbox": [10, 10, 0, 5], "area": 0, "iscrowd": 0},
        {"id": 5, "image_id": 11, "category_id": 3, "bbox": [20, 30, 10, 10], "area": 100, "iscrowd": 0},
    ]
    categories = [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}, {"id": 17, "name": "cat"}]
    return write_coco(tmp_path, images, annotations, categories)
