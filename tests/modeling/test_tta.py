"""Test-time augmentation's parts: the mirror mapped back, a short side set on the resize and restored, the merge,
bad settings as one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from detect.modeling.tta import TtaSpec, at_short_side, merged, mirrored
from detect.utils.errors import DetectError


def test_mirrored_boxes_map_back_to_the_image() -> None:
    output = {"boxes": torch.tensor([[0.0, 5, 10, 15], [100, 0, 128, 9]]), "labels": torch.tensor([1, 2])}
    assert mirrored(output, 128)["boxes"].tolist() == [[118, 5, 128, 15], [0, 0, 28, 9]]
    assert mirrored(mirrored(output, 128), 128)["boxes"].tolist() == output["boxes"].tolist()


def test_a_short_side_is_set_on_the_resize_for_the_call_only() -> None:
    model = SimpleNamespace(transform=SimpleNamespace(min_size=(800,), max_size=1333))
    seen = []

    def call(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        seen.append((model.transform.min_size, model.transform.max_size))
        if not images:
            raise RuntimeError("no images")
        return []

    at_short_side(model, call, 400)([torch.zeros(3, 4, 4)])
    assert seen == [((400,), 666)] and (model.transform.min_size, model.transform.max_size) == ((800,), 1333)
    with pytest.raises(RuntimeError):
        at_short_side(model, call, 1000)([])
    assert seen[-1] == ((1000,), 1666) and (model.transform.min_size, model.transform.max_size) == ((800,), 1333)


def test_views_are_merged_per_class_by_nms() -> None:
    view = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]]), "labels": torch.tensor([1, 2]),
            "scores": torch.tensor([0.9, 0.8])}
    other = {"boxes": torch.tensor([[1.0, 0, 11, 10], [50, 50, 60, 60]]), "labels": torch.tensor([1, 1]),
             "scores": torch.tensor([0.95, 0.5])}
    result = merged([view, other], 0.5)
    assert result["boxes"].tolist() == [[1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]]
    assert result["labels"].tolist() == [1, 2, 1]
    assert merged([view], 0.5) is view


@pytest.mark.parametrize(("settings", "message"), [
    ({"sizes": [0, 800]}, r"^tta.sizes=\[0, 800\] must be short sides in pixels, each >= 1"),
    ({"sizes": 800}, r"^tta.sizes=800 must be short sides in pixels"),
    ({"flip": "yes"}, r"^tta.flip='yes' must be true or false"),
    ({"flip": True, "iou": 1.5}, r"^tta.iou=1.5 must be in \(0, 1\]"),
])
def test_bad_tta_settings_are_one_line_naming_the_key(settings: dict, message: str) -> None:
    with pytest.raises(DetectError, match=message):
        TtaSpec(**{"flip": False, "sizes": None, "iou": 0.5, **settings})
