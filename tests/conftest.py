"""Shared fixtures: a tiny COCO dataset on disk and a cache folder for the synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_coco


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cache")


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
