"""results.png: every logged training curve (loss terms, learning rate) and the validation AP against the step,
from what the run's logger recorded: csv/metrics.csv (Lightning's CSVLogger) or, without it, the TensorBoard event
files (logger=tensorboard)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from detect.utils.plotting import plt, save_figure

NOT_CURVES = ("step", "epoch", "hp_metric")  # bookkeeping that loggers record beside the curves


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Each column of metrics.csv as (step, value) points, empty cells left out; a resumed run's rows included."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            if not row.get("step"):
                continue
            for key, value in row.items():
                if key not in NOT_CURVES and value not in ("", None):
                    series.setdefault(key, []).append((int(float(row["step"])), float(value)))
    return {key: sorted(points) for key, points in series.items()}


def read_tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Each scalar tag of the TensorBoard event files in `folder` as (step, value) points; a step written twice (a
    resumed run) keeps its last value."""
    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})  # 0: every point, not a sample
    events.Reload()
    return {tag: sorted({event.step: event.value for event in events.Scalars(tag)}.items())
            for tag in events.Tags()[SCALARS] if tag not in NOT_CURVES}


def read_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The logged curves of a run folder: from csv/metrics.csv, else from tensorboard/'s event files; {} without
    either."""
    if (run_dir / "csv" / "metrics.csv").is_file():
        return read_metrics(run_dir / "csv" / "metrics.csv")
    if any((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        return read_tensorboard(run_dir / "tensorboard")
    return {}


AP_KEYS = ("val/AP", "val/AP50", "val/AP75")  # drawn together, in the "validation AP" panel


def history_panels(keys: Iterable[str]) -> list[list[str]]:
    """The logged keys of each panel: one per value, a training loss with its validation loss, the AP keys last."""
    keys = set(keys)
    panels = [[key, *[val for val in [key.replace("train/", "val/", 1)] if val != key and val in keys]]
              for key in sorted(keys) if not key.startswith("val/")]
    ap = [key for key in AP_KEYS if key in keys]
    return panels + ([ap] if ap else [])


def plot_history(run_dir: Path, path: Path) -> Path | None:
    """One panel per logged value (`history_panels`); None when the run's loggers recorded none."""
    series = read_history(run_dir)
    panels = history_panels(series)
    if not panels:
        return None
    columns = min(4, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4 * columns, 3 * lines), squeeze=False, layout="constrained")
    for ax, keys in zip(axes.flat, panels):
        for key in keys:
            steps, values = zip(*series[key])
            ax.plot(steps, values, marker="o" if len(steps) < 10 else None, markersize=3, label=key, linewidth=1)
        ax.set(title="validation AP" if keys[0] in AP_KEYS else " / ".join(keys), xlabel="step")
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    return save_figure(figure, path)
