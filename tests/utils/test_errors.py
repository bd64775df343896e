"""Every library error the toolkit wraps is one line that names the file and says what to do: the real entry
functions on broken files (a text file named .ckpt, garbage .xml / .onnx / .jpg / .bmp / .yaml / .json / gt.txt)."""

from __future__ import annotations

import fractions
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import write_coco

from detect.data.coco import read_checked
from detect.data.yolo import read_data_yaml
from detect.evaluation.mot import evaluate_tracking
from detect.inference import Detector
from detect.utils.errors import FIRST_LINE_LIMIT, DetectError, first_line

TEXT = b"not a checkpoint\nbut a text file\n"


def coco_with_image(folder: Path, name: str, content: bytes) -> Path:
    """A COCO json of one image `name` whose file holds `content`."""
    path = write_coco(folder, [{"id": 1, "file_name": name, "width": 8, "height": 8}], [],
                      [{"id": 1, "name": "thing"}])
    (folder / "images" / name).write_bytes(content)
    return path


# (file written, its bytes, the entry function called on its path, the advice the message must give)
CASES: dict[str, tuple[str, bytes | None, Callable[[Path], Any], str]] = {
    "torch.load text": ("text.ckpt", TEXT, Detector.load, "pass a checkpoint saved by train.py"),
    "torch.load empty": ("empty.pth", b"", Detector.load, "pass a checkpoint saved by train.py"),
    "torch.load bad zip": ("zip.pt", b"PK\x03\x04garbage", Detector.load, "pass a checkpoint saved by train.py"),
    "torch.load object": ("fraction.ckpt", None, Detector.load, "pass a checkpoint saved by train.py"),
    "OpenVINO read_model": ("model.xml", b"<net>garbage", Detector.load, "export it again"),
    "onnxruntime session": ("model.onnx", TEXT, Detector.load, "export it again"),
    "cv2 imread": ("photo.jpg", TEXT, lambda path: Detector.load(backbone="resnet18", min_size=64, max_size=64)(path),
                   "pass a jpg/png/... file"),
    "PIL header": ("photo.bmp", TEXT,
                   lambda path: read_checked(coco_with_image(path.parent / "coco", path.name, TEXT),
                                             path.parent / "coco" / "images", on_bad_image="error"),
                   "fix or remove it"),
    "yaml": ("data.yaml", b"names: [a, b\ntrain: images\n", read_data_yaml, "fix the file"),
    "json": ("ann.json", b'{"images": [,]}', read_checked, "it needs 'images', 'annotations' and 'categories'"),
    "MOT gt.txt": ("gt.txt", b"frame,id,x\n", lambda path: evaluate_tracking(path, path.with_name("tracks.txt")),
                   "lines are frame,id,x,y,w,h"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_wrapped_library_error_is_one_line_naming_the_file_and_what_to_do(tmp_path: Path, case: str) -> None:
    name, content, entry, advice = CASES[case]
    path = tmp_path / name
    if content is None:  # a pickled Python object torch's weights-only loader refuses with paragraphs of advice
        torch.save({"lr": fractions.Fraction(1, 10)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(DetectError) as raised:
        entry(path)
    message = str(raised.value)
    print(f"{case} | {name} | {message}")  # the table of the issue: pytest -s shows it
    assert "\n" not in message and name in message and advice in message, message
    assert "Check the documentation" not in message and "Exception from src" not in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("Weights only load failed. In PyTorch 2.6, ...\nPlease file an issue: WeightsUnpickler error: \n\nUnsupported "
     f"global: GLOBAL a.B was not an allowed global by default. Please use {'`add_safe_globals` ' * 20}.\n\nCheck",
     "RuntimeError: Unsupported global: GLOBAL a.B was not an allowed global by default."),
    ("Could not append to config. An item is already at 'a'.\nEither remove + prefix",
     "RuntimeError: Could not append to config. An item is already at 'a'."),
    ("Exception from src/core.cpp:84:\nException from src/reader.cpp:1:\nUnable to read model.xml\n\n",
     "RuntimeError: Unable to read model.xml"),
    ("Error(s) in loading state_dict for ResNet:\n\tsize mismatch for fc.weight: copying a param",
     "RuntimeError: size mismatch for fc.weight: copying a param"),
    ("", "RuntimeError"),
    ("x" * 500, f"RuntimeError: {'x' * (FIRST_LINE_LIMIT - 3)}..."),
])
def test_first_line_keeps_the_reason_of_a_library_message(text: str, expected: str) -> None:
    assert first_line(RuntimeError(text)) == expected


def test_first_line_gives_a_yaml_error_its_place() -> None:
    yaml = pytest.importorskip("yaml")
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load("a: [1, 2\nb: 3")
    assert first_line(raised.value) == "ParserError: expected ',' or ']', but got ':' (line 2, column 2)"
    assert first_line(json.JSONDecodeError("Expecting value", "{,}", 1), typed=False).startswith("Expecting value")
