"""results.png: every logged training curve (loss terms, learning rate) and the validation AP against the step,
from a run's metrics.csv (Lightning's CSVLogger)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from detect.plotting import plt, save_figure


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Each column of metrics.csv as (step, value) points, empty cells left out; a resumed run's rows included."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            if not row.get("step"):
                continue
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(key, []).append((int(float(row["step"])), float(value)))
    return {key: sorted(points) for key, points in series.items()}


def plot_history(metrics_csv: Path, path: Path) -> Path | None:
    """One panel per logged value (val/AP, AP50 and AP75 together); None without a csv or values in it."""
    if not metrics_csv.is_file():
        return None
    series = read_metrics(metrics_csv)
    panels = [[key] for key in sorted(series) if not key.startswith("val/")]
    ap = [key for key in ("val/AP", "val/AP50", "val/AP75") if key in series]
    panels += [ap] if ap else []
    if not panels:
        return None
    columns = min(4, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4 * columns, 3 * lines), squeeze=False, layout="constrained")
    for ax, keys in zip(axes.flat, panels):
        for key in keys:
            steps, values = zip(*series[key])
            ax.plot(steps, values, marker="o" if len(steps) < 10 else None, markersize=3, label=key, linewidth=1)
        ax.set(title=" / ".join(keys) if len(keys) == 1 else "validation AP", xlabel="step")
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    return save_figure(figure, path)
