"""COCO-format data: id mapping, crowd/degenerate/empty handling, decoding, grouping, the synthetic generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import SequentialSampler

from detect.data.augment import train_transforms
from detect.data.coco import CocoDetection, load_coco, read_image
from detect.data.datamodule import CocoDataModule
from detect.data.samplers import GroupedBatchSampler, aspect_ratio_groups
from detect.data.synthetic import write_synthetic_coco
from detect.utils.errors import DetectError


def test_category_ids_with_gaps_map_to_contiguous_labels_and_back(gappy_coco: Path) -> None:
    dataset = CocoDetection(gappy_coco, gappy_coco.parent / "images")
    assert dataset.classes.category_ids == [3, 17, 90]
    assert dataset.classes.names == ["car", "cat", "toothbrush"]
    image, target = dataset[0]  # image 10: cat and toothbrush (past the border: clipped), crowd left out
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert target["image_id"] == 10
    assert target["labels"].tolist() == [2, 3]
    torch.testing.assert_close(target["boxes"], torch.tensor([[4.0, 5.0, 24.0, 15.0], [30.0, 20.0, 60.0, 48.0]]))
    assert [dataset.classes.category_ids[label - 1] for label in target["labels"].tolist()] == [17, 90]


def test_crowd_degenerate_and_empty_images_are_counted(gappy_coco: Path) -> None:
    keep = CocoDetection(gappy_coco, gappy_coco.parent / "images", keep_empty=True)
    assert (keep.num_crowd, keep.num_degenerate, keep.num_empty_dropped) == (1, 1, 0)
    assert keep.image_ids == [10, 11, 12]
    assert keep[1][1]["labels"].tolist() == [1] and keep[2][1]["boxes"].shape == (0, 4)
    drop = CocoDetection(gappy_coco, gappy_coco.parent / "images", keep_empty=False)
    assert drop.image_ids == [10, 11] and drop.num_empty_dropped == 1


def test_flip_moves_boxes_with_the_image(gappy_coco: Path) -> None:
    flipped = CocoDetection(gappy_coco, gappy_coco.parent / "images", train_transforms(1.0, photometric=True))
    plain = CocoDetection(gappy_coco, gappy_coco.parent / "images")
    (image, target), (plain_image, plain_target) = flipped[0], plain[0]
    assert image.shape == plain_image.shape
    expected = plain_target["boxes"].clone()
    expected[:, [0, 2]] = 64 - plain_target["boxes"][:, [2, 0]]
    torch.testing.assert_close(target["boxes"], expected)


def test_read_image_handles_grayscale_and_alpha(tmp_path: Path) -> None:
    gray = np.full((5, 7), 200, np.uint8)
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 2] = 255  # red in OpenCV's BGRA order
    rgba[..., 3] = 10
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert read_image(tmp_path / "gray.png").shape == (5, 7, 3)
    assert (read_image(tmp_path / "gray.png") == 200).all()
    rgb = read_image(tmp_path / "rgba.png")
    assert rgb.shape == (5, 7, 3) and rgb[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(DetectError, match="could not be read"):
        read_image(tmp_path / "missing.png")


def test_missing_image_and_broken_annotations_are_named(gappy_coco: Path, tmp_path: Path) -> None:
    (gappy_coco.parent / "images" / "b.png").unlink()
    with pytest.raises(DetectError, match=r"image b.png \(id 11\) of .*ann.json is missing from .*images; fix or "
                                          "remove it, or set data.on_bad_image=skip"):
        CocoDetection(gappy_coco, gappy_coco.parent / "images", on_bad_image="error")
    skipped = CocoDetection(gappy_coco, gappy_coco.parent / "images", on_bad_image="skip")
    assert skipped.image_ids == [10, 12] and skipped.report.counts["bad_image"] == 1
    assert 11 not in skipped.coco.imgs and all(a["image_id"] != 11 for a in skipped.coco.dataset["annotations"])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DetectError, match="broken.json is not COCO-format json"):
        load_coco(broken)
    broken.write_text(json.dumps({"images": []}))
    with pytest.raises(DetectError, match="needs 'images', 'annotations' and 'categories'"):
        load_coco(broken)
    with pytest.raises(DetectError, match=r"data.val_json: .*nope.json does not exist"):
        CocoDataModule(str(gappy_coco), str(tmp_path / "images"), str(tmp_path / "nope.json"), str(tmp_path))


def test_grouped_batches_share_an_aspect_ratio_group() -> None:
    ratios = [0.4, 2.5, 0.45, 2.2, 0.3, 3.0, 1.1, 0.35]  # bin edges: 1/2 ... 2
    groups = aspect_ratio_groups(ratios, group_factor=3)
    assert groups[0] == groups[2] == groups[4] and groups[1] == groups[3] == groups[5] and groups[0] != groups[1]
    batches = list(GroupedBatchSampler(SequentialSampler(ratios), groups, batch_size=2))
    assert len(batches) == len(ratios) // 2
    assert batches == [[0, 2], [1, 3], [4, 7], [6, 5]]  # groups fill in order; the leftovers close the epoch


def test_synthetic_dataset_is_deterministic_and_cached(tmp_path: Path) -> None:
    options = dict(seed=3, num_train=6, num_val=3, image_size=(64, 80), object_sizes=(8, 24))
    first = write_synthetic_coco(tmp_path / "a", **options)
    second = write_synthetic_coco(tmp_path / "b", **options)
    assert first["train_json"].read_text() == second["train_json"].read_text()
    assert (cv2.imread(str(first["val_images"] / "000001.png")) == cv2.imread(str(second["val_images"] / "000001.png"))).all()
    assert write_synthetic_coco(tmp_path / "a", **options) == first  # cached: same folder, not rewritten
    other = write_synthetic_coco(tmp_path / "a", **{**options, "seed": 4})
    assert other["train_json"] != first["train_json"]
    coco = json.loads(first["train_json"].read_text())
    assert len(coco["images"]) == 6 and {c["id"] for c in coco["categories"]} == {1, 2, 4}
    for ann in coco["annotations"]:
        image = coco["images"][ann["image_id"] - 1]
        x, y, w, h = ann["bbox"]
        assert 8 <= w <= 24 and x + w <= image["width"] and y + h <= image["height"]


def test_synthetic_train_frequencies_make_a_rare_class_and_leave_the_val_split_even(tmp_path: Path) -> None:
    options = dict(seed=0, num_train=300, num_val=300, image_size=(48, 64), object_sizes=(8, 16),
                   shapes=("square", "disc", "diamond"))
    plain = write_synthetic_coco(tmp_path, **options)
    imbalanced = write_synthetic_coco(tmp_path, **options, train_frequencies=(0.6, 0.38, 0.02))
    assert imbalanced["train_json"] != plain["train_json"]  # its own folder: the plain one keeps its name
    share = {}
    for split in ("train_json", "val_json"):
        boxes = [a["category_id"] for a in json.loads(imbalanced[split].read_text())["annotations"]]
        share[split] = {c: boxes.count(c) / len(boxes) for c in (1, 2, 7)}  # square, disc, diamond
    assert share["train_json"][7] < 0.04 < 0.5 < share["train_json"][1]
    assert all(0.25 < share["val_json"][c] < 0.42 for c in (1, 2, 7))
    with pytest.raises(DetectError, match="must be 3 weights"):
        write_synthetic_coco(tmp_path, **options, train_frequencies=(1.0, 0.0))


def test_a_resumed_epoch_continues_its_batch_order(gappy_coco: Path) -> None:
    sampler = torch.utils.data.DistributedSampler(range(40), num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.set_epoch(2)
    batches = GroupedBatchSampler(sampler, [i % 3 for i in range(40)], batch_size=4)
    full = list(batches)
    batches.start_batch = 6  # the checkpoint was taken after 6 batches of this epoch
    assert list(batches) == full[6:] and list(batches) == full  # the next epoch starts at 0 again
    assert sorted(i for batch in full for i in batch) == list(range(40))
