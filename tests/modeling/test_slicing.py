"""The slice grid, greedy non-maximum merging, the merge of passes, one call per shape, and bad slice settings."""

from __future__ import annotations

import pytest
import torch

from detect.modeling.slicing import SliceSpec, Slicer, call_by_shape, greedy_nmm, merge, windows
from detect.utils.errors import DetectError


def spec(size: tuple[int, int] = (64, 64), overlap: float = 0.2, full_frame: bool = False, merge: str = "nmm",
         iou: float = 0.5) -> SliceSpec:
    return SliceSpec(size, overlap, full_frame, merge, iou)


@pytest.mark.parametrize(("height", "width", "size", "overlap"), [
    (96, 128, (64, 64), 0.2), (1080, 1920, (512, 640), 0.25), (100, 100, (30, 45), 0.0), (50, 300, (50, 70), 0.5)])
def test_slices_cover_the_frame_with_at_least_the_overlap(height: int, width: int, size: tuple[int, int],
                                                          overlap: float) -> None:
    found = windows(height, width, spec(size, overlap))
    covered = torch.zeros(height, width, dtype=torch.int)
    for x0, y0, x1, y1 in found:
        assert (y1 - y0, x1 - x0) == size and 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height
        covered[y0:y1, x0:x1] += 1
    assert bool((covered > 0).all())
    for axis, length in ((0, size[1]), (1, size[0])):  # neighbours along x, then along y
        origins = sorted({window[axis] for window in found})
        assert all(length - (b - a) >= overlap * length - 1 for a, b in zip(origins, origins[1:]))


def test_the_whole_frame_is_added_once_and_a_frame_no_larger_than_a_slice_is_one_pass() -> None:
    assert windows(96, 128, spec(full_frame=True))[-1] == (0, 0, 128, 96)
    assert windows(60, 64, spec(full_frame=True)) == [(0, 0, 64, 60)]
    assert windows(60, 200, spec(full_frame=False)) == [(0, 0, 64, 60), (51, 0, 115, 60), (102, 0, 166, 60),
                                                        (136, 0, 200, 60)]


def test_a_frame_no_larger_than_the_slice_is_said_once_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    slicer = Slicer(spec(size=(200, 200), full_frame=True))
    for _ in range(3):
        passes, _ = slicer.split([torch.rand(3, 60, 80)])
        assert len(passes) == 1
    slicer.split([torch.rand(3, 50, 80)])
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["note: slice.size=[200, 200] is not smaller than the 60x80 frame: one pass of the whole frame",
                     "note: slice.size=[200, 200] is not smaller than the 50x80 frame: one pass of the whole frame"]


def test_greedy_nmm_joins_the_parts_of_an_object_and_keeps_other_objects_and_classes() -> None:
    boxes = torch.tensor([[40.0, 10, 64, 50], [48, 10, 80, 50],  # an object's parts either side of a slice border
                          [48, 10, 80, 50],  # the same place, another class
                          [100, 10, 120, 30]])  # another object
    scores, labels = torch.tensor([0.6, 0.9, 0.8, 0.7]), torch.tensor([1, 1, 2, 1])
    merged = greedy_nmm(boxes, scores, labels, 0.5)
    assert merged["boxes"].tolist() == [[40, 10, 80, 50], [48, 10, 80, 50], [100, 10, 120, 30]]
    assert merged["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert merged["labels"].tolist() == [1, 2, 1]
    assert len(greedy_nmm(boxes, scores, labels, 0.9)["boxes"]) == 4  # parts overlapping by 16/24 < 0.9: apart
    assert len(greedy_nmm(boxes[:0], scores[:0], labels[:0], 0.5)["boxes"]) == 0


@pytest.mark.parametrize("how", ["nms", "nmm"])
def test_merge_shifts_each_pass_back_to_the_frame(how: str) -> None:
    box = {"boxes": torch.tensor([[2.0, 3, 12, 13]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
    other = {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
    merged = merge([box, other], [(50, 20, 114, 84), (0, 0, 64, 64)], spec(merge=how))
    assert merged["boxes"].tolist() == [[52, 23, 62, 33], [0, 0, 4, 4]]


def test_every_slice_goes_in_one_call_and_the_whole_frames_in_another() -> None:
    calls = []

    def call(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        calls.append([tuple(image.shape) for image in images])
        return [{"index": torch.tensor(image[0, 0, 0].item())} for image in images]

    frames = [torch.full((3, 96, 128), float(i)) for i in range(2)]
    passes, plan = Slicer(spec(full_frame=True)).split(frames)
    for i, image in enumerate(passes):
        image[0, 0, 0] = i
    outputs = call_by_shape(call, passes)
    assert [int(output["index"]) for output in outputs] == list(range(len(passes)))  # back in the passes' order
    slices = len(windows(96, 128, spec())) * 2
    assert calls == [[(3, 64, 64)] * slices, [(3, 96, 128)] * 2]
    assert plan.frames == sorted(plan.frames) and plan.count == 2


@pytest.mark.parametrize(("settings", "message"), [
    ({"size": (0, 64)}, r"^slice.size=\[0, 64\] must be a slice height and width in pixels, both >= 1"),
    ({"size": (-5, 64)}, r"^slice.size=\[-5, 64\] must be"),
    ({"size": 64}, r"^slice.size=64 must be"),
    ({"overlap": 1.0}, r"^slice.overlap=1.0 must be in \[0, 1\)"),
    ({"overlap": -0.1}, r"^slice.overlap=-0.1 must be in \[0, 1\)"),
    ({"merge": "wbf"}, r"^slice.merge='wbf' is not allowed; choose one of nmm, nms"),
    ({"iou": 0.0}, r"^slice.iou=0.0 must be in \(0, 1\]"),
    ({"full_frame": "yes"}, r"^slice.full_frame='yes' must be true or false"),
])
def test_bad_slice_settings_are_one_line_naming_the_key(settings: dict, message: str) -> None:
    with pytest.raises(DetectError, match=message) as raised:
        SliceSpec(**{"size": (64, 64), "overlap": 0.2, "full_frame": True, "merge": "nmm", "iou": 0.5, **settings})
    assert "\n" not in str(raised.value)
