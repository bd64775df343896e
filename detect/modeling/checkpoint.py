"""Checkpoints written atomically and read with `weights_only=True`, and what a detector checkpoint carries.

A checkpoint of train.py is Lightning's dict: the weights under `state_dict` (the detector's keys prefixed with
`model.`) and, under `METADATA_KEY`, the class names, the dataset's category ids and the `model` config. The
checkpoints of other toolkits are unwrapped too (`split_detector_checkpoint`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from detect.utils.errors import DetectError, first_line

METADATA_KEY = "detect"
DETECTOR_PREFIX = "model."  # the detector's keys in a checkpoint's state_dict (the module keeps it as `model`)
PREDICTOR_PREFIX = "roi_heads.box_predictor."  # torchvision's Faster R-CNN box predictor: marks a detector's keys
# Where other toolkits keep the weights in a checkpoint: Lightning and many projects under "state_dict",
# torchvision's detection reference script under "model" (beside "optimizer", "epoch", "args"), a few elsewhere.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "net")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
# Plain-data classes other toolkits pickle beside the weights: torchvision's reference script saves its `args`.
SAFE_GLOBALS = [argparse.Namespace]


def detector_metadata(class_names: Sequence[str], category_ids: Sequence[int],
                      model_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checkpoint entries beside the weights, in plain types so that `weights_only=True` reads them."""
    return {METADATA_KEY: {"class_names": list(class_names), "category_ids": [int(i) for i in category_ids],
                           "model": dict(model_config or {})}}


def split_detector_checkpoint(checkpoint: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(the detector's state_dict, the entries of `detector_metadata` or {}, the layout found) of a checkpoint.

    The state_dict is looked for under `WRAPPER_KEYS` (else the checkpoint itself is one), and the detector's keys
    by the prefix of its box predictor's (`model.`, `net.`, DataParallel's `module.`, ...), which is removed. The
    layout names what was unwrapped, e.g. "torchvision reference checkpoint, weights under 'model'"; None for a
    checkpoint of train.py or a bare state_dict. Without a box predictor the weights come back as found."""
    wrapper = next((key for key in WRAPPER_KEYS if isinstance(checkpoint.get(key), dict)), None)
    weights = checkpoint[wrapper] if wrapper else checkpoint
    marker = PREDICTOR_PREFIX + "cls_score.weight"
    prefix = next((key.removesuffix(marker) for key in weights if str(key).endswith(marker)), None)
    meta = checkpoint.get(METADATA_KEY, {})
    if prefix is None:
        return weights, meta, None
    state_dict = {key.removeprefix(prefix): value for key, value in weights.items() if key.startswith(prefix)}
    if METADATA_KEY in checkpoint or (wrapper, prefix) == (None, ""):
        return state_dict, meta, None
    kind = ("torchvision reference checkpoint" if wrapper == "model" and {"optimizer", "epoch"} & set(checkpoint)
            else "Lightning checkpoint" if "pytorch-lightning_version" in checkpoint
            else "DataParallel state_dict" if (wrapper, prefix) == (None, "module.")
            else "checkpoint" if wrapper else "state_dict")
    where = [f"weights under '{wrapper}'"] if wrapper else []
    return state_dict, meta, ", ".join([kind, *where, *([f"prefix '{prefix}'"] if prefix else [])])


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


def missing_checkpoint(path: Path) -> str:
    """What to say of a checkpoint path that is no file: a folder (naming the checkpoint it holds, if one) or
    nothing there."""
    if not path.is_dir():
        return "does not exist; pass the path of a .ckpt or .pth file"
    best = path / "checkpoints" / "best.ckpt"  # a run folder of train.py
    found = [best] if best.is_file() else sorted(p for folder in (path, path / "checkpoints") if folder.is_dir()
                                                  for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    if len(found) == 1:
        return f"is a folder, not a checkpoint file; pass the checkpoint it holds: {found[0]}"
    listed = f"one of the {len(found)} it holds ({', '.join(p.name for p in found[:4])})" if found else \
        f"a {'/'.join(CHECKPOINT_SUFFIXES)} file (it holds none)"
    return f"is a folder, not a checkpoint file; pass {listed}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint or state_dict with `weights_only=True` (and `SAFE_GLOBALS`), on the CPU, with a readable
    error."""
    path = Path(path)
    if not path.is_file():
        raise DetectError(f"checkpoint {path} {missing_checkpoint(path)}")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        reason = "the file is empty" if path.stat().st_size == 0 else first_line(error)
        raise DetectError(f"checkpoint {path} could not be read ({reason}); pass a checkpoint saved by train.py "
                          "or a state_dict saved with torch.save") from error
    if not isinstance(checkpoint, dict):
        raise DetectError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a state_dict")
    return checkpoint
