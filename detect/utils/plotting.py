"""matplotlib for files only (the Agg backend: no display needed) and one way to save a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

__all__ = ["plt", "save_figure"]


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Write `figure` as a PNG at `path` (its folder made) and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
