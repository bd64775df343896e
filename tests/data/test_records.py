"""The flat per-image records: exact round trip against the json, the same samples as the per-image lists gave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_coco

from detect.data.coco import CocoDetection, read_image
from detect.data.datamodule import CocoDataModule
from detect.data.records import build_records
from detect.utils.errors import DetectError

CATEGORIES = [{"id": 7, "name": "cat"}, {"id": 2, "name": "dog"}]
LABEL_OF = {2: 1, 7: 2}


@pytest.fixture
def edgy(tmp_path: Path) -> Path:
    """Ids out of order, unicode names, an image without boxes, one with a crowd box only, boxes of one image
    scattered through the file, a box past the border, a degenerate box."""
    images = [{"id": 30, "file_name": "café ü 猫.png", "width": 40, "height": 30},
              {"id": 4, "file_name": "b.png", "width": 64, "height": 48},
              {"id": 17, "file_name": "empty.png", "width": 20, "height": 20},
              {"id": 9, "file_name": "crowd.png", "width": 32, "height": 32}]
    annotations = [
        {"id": 1, "image_id": 30, "category_id": 7, "bbox": [1.5, 2.25, 10, 5], "area": 50, "iscrowd": 0},
        {"id": 2, "image_id": 4, "category_id": 2, "bbox": [50, 40, 30, 30], "area": 900, "iscrowd": 0},
        {"id": 3, "image_id": 30, "category_id": 2, "bbox": [-3, 0, 8.125, 7], "area": 56, "iscrowd": 0},
        {"id": 4, "image_id": 9, "category_id": 7, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 1},
        {"id": 5, "image_id": 4, "category_id": 7, "bbox": [70, 5, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 6, "image_id": 30, "category_id": 7, "bbox": [0.1, 0.2, 0.3, 0.4], "area": 0.12},
    ]
    return write_coco(tmp_path, images, annotations, CATEGORIES)


def expected_targets(path: Path, keep_empty: bool = True) -> dict[int, tuple[str, list, list]]:
    """Per image id, its file name, clipped boxes and labels, computed from the json the plain way."""
    dataset = json.loads(path.read_text())
    images = {image["id"]: image for image in dataset["images"]}
    expected = {}
    for image_id in sorted(images):
        image, boxes, labels = images[image_id], [], []
        for ann in dataset["annotations"]:
            x, y, w, h = ann["bbox"]
            x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, image["width"]), min(y + h, image["height"])
            if ann["image_id"] == image_id and not ann.get("iscrowd", 0) and x2 > x1 and y2 > y1:
                boxes.append([x1, y1, x2, y2])
                labels.append(LABEL_OF[ann["category_id"]])
        if boxes or keep_empty:
            expected[image_id] = (image["file_name"], boxes, labels)
    return expected


@pytest.mark.parametrize("keep_empty", [True, False])
def test_records_round_trip_the_json_exactly(edgy: Path, keep_empty: bool) -> None:
    dataset = CocoDetection(edgy, edgy.parent / "images", keep_empty=keep_empty)
    expected = expected_targets(edgy, keep_empty)
    records = dataset.records
    assert records.image_ids.tolist() == list(expected) == ([4, 9, 17, 30] if keep_empty else [4, 30])
    assert [records.file_name(i) for i in range(len(records))] == [name for name, _, _ in expected.values()]
    for index, (_, boxes, labels) in enumerate(expected.values()):
        record_boxes, record_labels = records.target(index)
        assert record_boxes.dtype == np.float32 and record_labels.dtype == np.int64
        np.testing.assert_array_equal(record_boxes, np.array(boxes, np.float32).reshape(-1, 4))
        assert record_labels.tolist() == labels
    assert records.boxes.shape == (4, 4) and records.box_offsets[-1] == 4  # 6 boxes: 1 crowd, 1 degenerate
    assert (dataset.num_crowd, dataset.num_degenerate, dataset.num_empty_dropped) == (1, 1, 0 if keep_empty else 2)
    ratios = {4: 64 / 48, 9: 1.0, 17: 1.0, 30: 40 / 30}
    assert dataset.aspect_ratios() == [ratios[image_id] for image_id in expected]


def test_samples_are_the_images_and_targets_of_the_json(edgy: Path) -> None:
    dataset = CocoDetection(edgy, edgy.parent / "images")
    for index, (image_id, (name, boxes, labels)) in enumerate(expected_targets(edgy).items()):
        image, target = dataset[index]
        assert torch.equal(image, torch.from_numpy(read_image(edgy.parent / "images" / name)).permute(2, 0, 1))
        assert type(target["image_id"]) is int and target["image_id"] == image_id
        assert type(target["boxes"]) is torch.Tensor and target["boxes"].dtype == torch.float32
        assert torch.equal(target["boxes"], torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == labels
    boxes, _ = dataset.records.target(3)
    boxes += 100  # what a caller does to its target does not reach the records
    assert torch.equal(dataset[3][1]["boxes"], torch.tensor(expected_targets(edgy)[30][1], dtype=torch.float32))


def test_file_names_and_sizes_keep_what_the_json_says() -> None:
    images = [{"id": 2, "file_name": "lone \ud800 surrogate.jpg", "width": 640.5, "height": 480},
              {"id": 1, "file_name": "日本/語.jpg", "width": 3, "height": 7}]
    records, counts = build_records(images, [], LABEL_OF, keep_empty=True)
    assert [records.file_name(0), records.file_name(1)] == ["日本/語.jpg", "lone \ud800 surrogate.jpg"]
    assert records.sizes.tolist() == [[3, 7], [640.5, 480]] and records.boxes.shape == (0, 4)
    assert build_records(images, [], LABEL_OF, keep_empty=False)[1].empty_dropped == 2
    with pytest.raises(DetectError, match="image ids must be integers, as in COCO; found 'a'"):
        build_records([{"id": "a", "file_name": "x.jpg", "width": 1, "height": 1}], [], LABEL_OF, keep_empty=True)


def test_the_train_split_drops_its_coco_index_and_reads_it_again_if_asked(edgy: Path) -> None:
    images = str(edgy.parent / "images")
    module = CocoDataModule(str(edgy), images, str(edgy), images, keep_empty_train=True)
    module.setup("fit")
    assert "coco" in vars(module.val_set) and "coco" not in vars(module.train_set)
    assert module.train_set.coco.dataset == module.val_set.coco.dataset  # the same checked file, read again
    assert module.train_set.coco.imgs[30]["file_name"] == "café ü 猫.png"
