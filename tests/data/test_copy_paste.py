"""Copy-paste within a batch: pasted objects carry their pixels, boxes and labels; hidden own boxes are dropped."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_train

from detect.data.copy_paste import copy_paste_collate, paste
from detect.engine.training import check_train_config
from detect.utils.errors import DetectError


def sample(value: int, size: tuple[int, int], boxes: list[list[float]], labels: list[int]) -> tuple:
    image = torch.full((3, *size), value, dtype=torch.uint8)
    return image, {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels),
                   "image_id": value}


@pytest.mark.parametrize("seed", range(8))
def test_pasted_objects_bring_pixels_boxes_and_labels(seed: int) -> None:
    torch.manual_seed(seed)
    target_image = sample(0, (40, 60), [[0, 0, 30, 40], [40, 30, 60, 40]], [1, 1])  # left half, a strip bottom right
    source = sample(200, (20, 30), [[0, 0, 15, 20], [20, 5, 25, 10]], [2, 3])  # 2x smaller: scaled by 2 to paste
    image, target = paste(*target_image, *source)
    pasted = {2: [0, 0, 30, 40], 3: [40, 10, 50, 20]}
    new = target["labels"] != 1
    assert new.any() and len(target["boxes"]) == len(target["labels"]) and target["image_id"] == 0
    for (x1, y1, x2, y2), label in zip(target["boxes"][new].long().tolist(), target["labels"][new].tolist()):
        assert [x1, y1, x2, y2] == pasted[label]
        assert (image[:, y1:y2, x1:x2] == 200).all()  # the source's pixels, at the scaled box
    covered = 2 in target["labels"].tolist()  # the pasted 2 hides the left-half box entirely
    assert target["dropped"] == int(covered)
    assert (target["labels"] == 1).sum() == 2 - covered
    assert (image == 200).sum() == 3 * sum((b[2] - b[0]) * (b[3] - b[1]) for b in target["boxes"][new].tolist())


def test_the_batch_pastes_each_image_from_the_next() -> None:
    torch.manual_seed(0)
    batch = [sample(10, (20, 20), [[0, 0, 5, 5]], [1]), sample(90, (20, 20), [[10, 10, 20, 20]], [2])]
    images, targets = copy_paste_collate(batch)
    assert targets[0]["labels"].tolist() == [1, 2] and targets[1]["labels"].tolist() == [2, 1]
    assert (images[0][:, 10:, 10:] == 90).all() and (images[1][:, :5, :5] == 10).all()
    alone, alone_targets = copy_paste_collate(batch[:1])  # one image: nothing to paste from
    assert torch.equal(alone[0], batch[0][0]) and alone_targets[0]["labels"].tolist() == [1]


def test_bad_copy_paste_value_names_the_key() -> None:
    with pytest.raises(DetectError, match=r"^data\.copy_paste=maybe must be true or false$"):
        check_train_config(compose_train(["data.copy_paste=maybe"]))
