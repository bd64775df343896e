"""Augmentation presets: over random images and boxes every kept box lies inside the image with its own label, and
bad preset options are one line."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_train
from torchvision import tv_tensors

from detect.data.augment import AUGMENTS, train_transforms
from detect.engine.training import check_train_config
from detect.utils.errors import DetectError


def random_sample(generator: torch.Generator) -> tuple[tv_tensors.Image, dict]:
    """An image with up to 6 boxes side by side in a row (no overlap, some at the borders, some 1-3 px wide), labels
    1..n, and a label map: each box's pixels hold its label (a mask moves with the geometry, never its values)."""
    height, width = torch.randint(40, 120, (2,), generator=generator).tolist()
    count = int(torch.randint(0, 7, (1,), generator=generator))
    edges = torch.linspace(0, width, count + 1).round()
    boxes, label_map = [], torch.zeros(height, width, dtype=torch.uint8)
    for index in range(count):
        x1, x2 = int(edges[index]), int(edges[index + 1]) - (index < count - 1)  # a 1 px gap between boxes
        y1 = int(torch.randint(0, height - 1, (1,), generator=generator))
        y2 = int(torch.randint(y1 + 1, height + 1, (1,), generator=generator))
        if x2 > x1:
            boxes.append([x1, y1, x2, y2])
            label_map[y1:y2, x1:x2] = len(boxes)
    image = tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator))
    target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                format="XYXY", canvas_size=(height, width)),
              "labels": torch.arange(1, len(boxes) + 1), "image_id": 7, "map": tv_tensors.Mask(label_map)}
    return image, target


@pytest.mark.parametrize("augment", AUGMENTS)
def test_boxes_stay_inside_the_image_with_their_labels(augment: str) -> None:
    transforms = train_transforms(0.5, photometric=True, augment=augment, crop_size=96)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    kept = dropped = 0
    for _ in range(40):
        image, target = random_sample(generator)
        count = len(target["boxes"])
        image, target = transforms(image, target)
        if augment != "hflip":  # the crops count what they drop
            assert target["dropped"] == count - len(target["boxes"])
            dropped += target["dropped"]
        height, width = image.shape[-2:]
        assert image.dtype == torch.uint8 and target["image_id"] == 7
        if augment == "lsj":
            assert (height, width) == (96, 96)
        boxes, labels = target["boxes"], target["labels"]
        assert len(boxes) == len(labels) and tuple(boxes.canvas_size) == (height, width)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, 2] - boxes[:, 0] >= 1).all() and (boxes[:, 3] - boxes[:, 1] >= 1).all()
        for box, label in zip(boxes.round().long().tolist(), labels.tolist()):
            x1, y1, x2, y2 = box
            region = target["map"][max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1]
            assert (region == label).any(), (augment, box, label)  # the box still frames its own object
        kept += len(boxes)
    assert kept > 0 and (dropped > 0 or augment == "hflip")


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.augment=mosaic"], "data.augment='mosaic' is not allowed; choose one of hflip, ssd, lsj"),
    (["data.augment=lsj", "data.crop_size=256"], "data.crop_size=256 must be a side in pixels >= 1 and at most "
                                                 "model.max_size=192"),
    (["data.augment=lsj", "data.crop_size=0"], "data.crop_size=0 must be a side in pixels >= 1"),
])
def test_bad_presets_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(DetectError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        check_train_config(compose_train(overrides))


def test_lsj_crops_to_the_models_long_side_by_default() -> None:
    cfg = compose_train(["data.augment=lsj"])
    check_train_config(cfg)
    assert cfg.data.crop_size == cfg.model.max_size
