"""Checkpoints written atomically and read with `weights_only=True`, and what a detector checkpoint carries.

A checkpoint of train.py is Lightning's dict: the weights under `state_dict` (the detector's keys prefixed with
`model.`) and, under `METADATA_KEY`, the class names, the dataset's category ids and the `model` config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from detect.utils.errors import DetectError, first_line

METADATA_KEY = "detect"
DETECTOR_PREFIX = "model."  # the detector's keys in a checkpoint's state_dict (the module keeps it as `model`)


def detector_metadata(class_names: Sequence[str], category_ids: Sequence[int],
                      model_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checkpoint entries beside the weights, in plain types so that `weights_only=True` reads them."""
    return {METADATA_KEY: {"class_names": list(class_names), "category_ids": [int(i) for i in category_ids],
                           "model": dict(model_config or {})}}


def split_detector_checkpoint(checkpoint: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the detector's state_dict, the entries of `detector_metadata` or {}) of a checkpoint of train.py; a plain
    state_dict comes back as it is, with no metadata."""
    if "state_dict" not in checkpoint:
        return checkpoint, {}
    state_dict = {k.removeprefix(DETECTOR_PREFIX): v for k, v in checkpoint["state_dict"].items()
                  if k.startswith(DETECTOR_PREFIX)}
    return state_dict, checkpoint.get(METADATA_KEY, {})


def save_atomically(obj: Any, path: str | Path) -> None:
    """`torch.save` to a temporary file beside `path`, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint or state_dict with `weights_only=True`, on the CPU, with a readable error."""
    path = Path(path)
    if not path.is_file():
        raise DetectError(f"checkpoint {path} does not exist; pass the path of a .ckpt or .pth file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        reason = "the file is empty" if path.stat().st_size == 0 else first_line(error)
        raise DetectError(f"checkpoint {path} could not be read ({reason}); pass a checkpoint saved by train.py "
                          "or a state_dict saved with torch.save") from error
    if not isinstance(checkpoint, dict):
        raise DetectError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a state_dict")
    return checkpoint
