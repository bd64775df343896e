"""Checkpoints written atomically and read with `weights_only=True`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from detect.errors import DetectError


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
        raise DetectError(f"checkpoint {path} could not be read ({type(error).__name__}: {error}); "
                          "pass a checkpoint saved by train.py or a plain state_dict") from error
    if not isinstance(checkpoint, dict):
        raise DetectError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a state_dict")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with an atomic save and a `weights_only=True` load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return read_checkpoint(path)
