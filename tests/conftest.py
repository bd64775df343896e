"""Shared fixtures: a tiny COCO dataset on disk, a cache folder for the synthetic data, a trained tiny run, the tiny
inference model's checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import TINY, TINY_CLASSES, compose_infer, compose_train, synthetic_overrides, write_checkpoint, write_coco
from omegaconf import OmegaConf

DEFAULT_THREADS = torch.get_num_threads()  # as many as cores
if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2` (pyproject): a torch thread a worker, 2 threads in all
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cache")


@pytest.fixture(scope="session")
def trained_run(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as train.py leaves it (.hydra/config.yaml, checkpoints/best.ckpt, eval/) of the tiny detector
    trained for 80 steps on 64 synthetic images: a checkpoint that detects shapes (AP50 ~0.3), not random weights."""
    from detect.engine.training import run

    run_dir = tmp_path_factory.mktemp("trained")
    cfg = compose_train([*TINY, *synthetic_overrides(synthetic_cache, num_train=64, num_val=16), "optim=adamw",
                         "optim.lr=0.001", "optim.weight_decay=0", "scheduler.warmup_steps=5", "trainer.max_steps=80",
                         "trainer.val_check_interval=80"], run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what Hydra writes beside a run of train.py
    # trained with the default threads under pytest -n 2 too: the weights then do not depend on how the suite runs
    # (the backend tests' 1-px and 1-AP-point rules, on so weak a model, fail on the weights of a 1-thread training)
    threads = torch.get_num_threads()
    torch.set_num_threads(DEFAULT_THREADS)
    try:
        run(cfg)
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train.py-style checkpoint of the tiny inference model (random weights, TINY_CLASSES: cat=17, dog=42)."""
    path = tmp_path_factory.mktemp("tiny-ckpt") / "tiny.ckpt"
    write_checkpoint(path, compose_infer(["source=x"], path.parent).model, TINY_CLASSES)
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
