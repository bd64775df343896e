"""Lightning's checkpoint IO with atomic writes (a crash mid-save leaves the previous file whole)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from detect.modeling.checkpoint import read_checkpoint, save_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with an atomic save and a `weights_only=True` load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return read_checkpoint(path)
