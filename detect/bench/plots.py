"""PNG plots of a sweep: latency vs input size, throughput vs batch, memory vs input size, backend speed-ups."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from detect.model import BACKBONES  # noqa: E402

Row = dict[str, Any]


def _pixels(size: str) -> int:
    height, width = (int(v) for v in size.split("x"))
    return height * width


def _panels(rows: list[Row], keys: tuple[str, ...]) -> dict[tuple, list[Row]]:
    panels: dict[tuple, list[Row]] = {}
    for row in rows:
        panels.setdefault(tuple(row[k] for k in keys), []).append(row)
    return panels


def _figure(count: int, title: str) -> tuple[plt.Figure, list[plt.Axes]]:
    columns = min(count, 3)
    lines = math.ceil(count / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 4.2 * lines), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=13)
    return figure, list(axes.flat[:count])


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _depth_lines(ax: plt.Axes, rows: list[Row], x: Callable[[Row], float], y: Callable[[Row], float | None]) -> None:
    """One line per backbone, in depth order, through the rows that have a y value."""
    for backbone in BACKBONES:
        points = sorted((x(r), y(r)) for r in rows if r["backbone"] == backbone and y(r) is not None)
        if points:
            ax.plot(*zip(*points), marker="o", label=backbone)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _size_axis(ax: plt.Axes, sizes: Iterable[str]) -> None:
    sizes = sorted(set(sizes), key=_pixels)
    ax.set_xscale("log")
    ax.set_xticks([_pixels(s) for s in sizes], sizes, rotation=30, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("input size (HxW, log pixels)")


def latency_vs_size(rows: list[Row], path: Path) -> Path | None:
    """Median latency against input size, a line per depth, at the smallest batch of each panel."""
    panels = _panels(rows, ("task", "backend", "precision"))
    panels = {k: v for k, v in panels.items() if len({r["size"] for r in v}) > 1}
    if not panels:
        return None
    figure, axes = _figure(len(panels), "Latency vs input size (median per call, log-log)")
    for ax, ((task, backend, precision), panel) in zip(axes, panels.items()):
        batch = min(r["batch"] for r in panel)
        _depth_lines(ax, [r for r in panel if r["batch"] == batch], lambda r: _pixels(r["size"]),
                     lambda r: r.get("median_ms"))
        _size_axis(ax, (r["size"] for r in panel))
        ax.set_yscale("log")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{task}, {backend}, {precision}, batch {batch}", fontsize=10)
    return _save(figure, path)


def throughput_vs_batch(rows: list[Row], path: Path) -> Path | None:
    """Images per second against batch size, a line per depth, at the smallest input size of each panel."""
    panels = _panels(rows, ("task", "backend", "precision"))
    panels = {k: v for k, v in panels.items() if len({r["batch"] for r in v}) > 1}
    if not panels:
        return None
    figure, axes = _figure(len(panels), "Throughput vs batch size")
    for ax, ((task, backend, precision), panel) in zip(axes, panels.items()):
        size = min((r["size"] for r in panel), key=_pixels)
        _depth_lines(ax, [r for r in panel if r["size"] == size], lambda r: r["batch"], lambda r: r.get("img_per_s"))
        batches = sorted({r["batch"] for r in panel})
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("batch size (images per call)")
        ax.set_ylabel("throughput (images/s)")
        ax.set_title(f"{task}, {backend}, {precision}, {size}", fontsize=10)
    return _save(figure, path)


def memory_vs_size(rows: list[Row], path: Path) -> Path | None:
    """Peak memory against input size (VRAM allocated on a GPU, process RSS on a CPU), a line per depth."""
    panels = _panels(rows, ("task", "backend", "precision"))
    panels = {k: v for k, v in panels.items() if len({r["size"] for r in v}) > 1}
    if not panels:
        return None
    gpu = any(r["device"].startswith("cuda") for r in rows)
    key, label = ("vram_alloc_mib", "peak VRAM allocated (MiB)") if gpu else ("peak_rss_mib", "peak process RSS (MiB)")
    figure, axes = _figure(len(panels), f"{'VRAM' if gpu else 'Memory (RSS)'} vs input size")
    for ax, ((task, backend, precision), panel) in zip(axes, panels.items()):
        batch = min(r["batch"] for r in panel)
        _depth_lines(ax, [r for r in panel if r["batch"] == batch], lambda r: _pixels(r["size"]), lambda r: r.get(key))
        _size_axis(ax, (r["size"] for r in panel))
        ax.set_ylabel(label)
        ax.set_title(f"{task}, {backend}, {precision}, batch {batch}", fontsize=10)
    return _save(figure, path)


def backend_speedups(rows: list[Row], path: Path) -> Path | None:
    """Speed-up of each backend over eager PyTorch, a group of bars per (task, depth, size, batch, precision)."""
    others = sorted({r["backend"] for r in rows if r.get("speedup") and r["backend"] != "eager"})
    if not others:
        return None
    groups = _panels([r for r in rows if r.get("speedup") and r["backend"] != "eager"],
                     ("task", "backbone", "size", "batch", "precision"))
    height = 0.8 / len(others)
    figure, ax = plt.subplots(figsize=(9, 1.2 + 0.28 * len(groups) * len(others) + 0.1 * len(groups)))
    labels = []
    for g, ((task, backbone, size, batch, precision), group) in enumerate(groups.items()):
        labels.append(f"{task} {backbone} {size} b{batch} {precision}")
        for b, backend in enumerate(others):
            speedup = next((r["speedup"] for r in group if r["backend"] == backend), None)
            if speedup is not None:
                bar = ax.barh(g + (b - (len(others) - 1) / 2) * height, speedup, height, color=f"C{b + 1}",
                              label=backend if g == 0 or backend not in ax.get_legend_handles_labels()[1] else None)
                ax.bar_label(bar, [f"{speedup:.2f}x"], fontsize=7, padding=2)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(groups)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over eager PyTorch (eager median / backend median; > 1 is faster)")
    ax.set_title("Backend speed-ups", fontsize=13)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(figure, path)


def write_plots(rows: list[Row], output_dir: Path) -> list[Path]:
    """Write the plots the sweep has data for (a plot needs two sizes, two batches or two backends)."""
    measured = [r for r in rows if r.get("median_ms") is not None]
    plots = [latency_vs_size(measured, output_dir / "latency_vs_size.png"),
             throughput_vs_batch(measured, output_dir / "throughput_vs_batch.png"),
             memory_vs_size(measured, output_dir / "memory_vs_size.png"),
             backend_speedups(measured, output_dir / "backend_speedups.png")]
    return [p for p in plots if p is not None]
