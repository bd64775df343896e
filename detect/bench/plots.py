"""PNG plots of a sweep: latency vs input size, throughput vs batch, memory vs input size, backend speed-ups."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from matplotlib import ticker

from detect.modeling.model import BACKBONES
from detect.utils.plotting import plt, save_figure

Row = dict[str, Any]
BACKEND_COLORS = {"channels_last": "tab:orange", "compile": "tab:green", "onnxruntime": "tab:blue",
                  "openvino": "tab:purple", "opencv": "tab:red"}


def _pixels(size: str) -> int:
    height, width = (int(v) for v in size.split("x"))
    return height * width


def _panels(rows: list[Row], keys: tuple[str, ...]) -> dict[tuple, list[Row]]:
    panels: dict[tuple, list[Row]] = {}
    for row in rows:
        panels.setdefault(tuple(row[k] for k in keys), []).append(row)
    return panels


def _figure(count: int, title: str) -> tuple[plt.Figure, list[plt.Axes]]:
    """Panels on a shared y axis (up to 3 a line) under one title."""
    columns = min(count, 3)
    lines = math.ceil(count / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(1.2 + 4.6 * columns, 0.6 + 3.8 * lines), squeeze=False,
                                sharey=True, layout="constrained")
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=13)
    return figure, list(axes.flat[:count])


def _depth_lines(ax: plt.Axes, rows: list[Row], x: Callable[[Row], float], y: Callable[[Row], float | None]) -> None:
    """One line per backbone, in depth order (the same colour in every panel), through the rows with a y value."""
    for color, backbone in enumerate(BACKBONES):
        points = sorted((x(r), y(r)) for r in rows if r["backbone"] == backbone and y(r) is not None)
        if points:
            ax.plot(*zip(*points), marker="o", color=f"C{color}", label=backbone)
    ax.grid(True, which="both", alpha=0.3)


def _depth_legend(figure: plt.Figure, axes: list[plt.Axes]) -> None:
    """One legend for all panels, right of them."""
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    ordered = [name for name in BACKBONES if name in handles]
    figure.legend([handles[name] for name in ordered], ordered, loc="outside right upper", title="depth")


def _log_y(ax: plt.Axes) -> None:
    """A log y axis labelled with plain numbers at 1, 2, 5 x 10^k."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


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
        _log_y(ax)
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{task}, {backend}, {precision}, batch {batch}", fontsize=10)
    _depth_legend(figure, axes)
    return save_figure(figure, path)


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
        _log_y(ax)
        ax.set_xlabel("batch size (images per call)")
        ax.set_ylabel("throughput (images/s)")
        ax.set_title(f"{task}, {backend}, {precision}, {size}", fontsize=10)
    _depth_legend(figure, axes)
    return save_figure(figure, path)


def memory_vs_size(rows: list[Row], path: Path) -> Path | None:
    """Peak memory against input size (VRAM allocated on a GPU, process RSS on a CPU), a line per depth."""
    panels = _panels(rows, ("task", "backend", "precision"))
    panels = {k: v for k, v in panels.items() if len({r["size"] for r in v}) > 1}
    if not panels:
        return None
    gpu = any(r["device"].startswith("cuda") for r in rows)
    key, label = ("vram_alloc_mib", "peak VRAM allocated (MiB)") if gpu else ("peak_rss_mib", "peak RSS of the whole process (MiB)")
    figure, axes = _figure(len(panels), f"{'VRAM' if gpu else 'Memory (RSS)'} vs input size")
    for ax, ((task, backend, precision), panel) in zip(axes, panels.items()):
        batch = min(r["batch"] for r in panel)
        _depth_lines(ax, [r for r in panel if r["batch"] == batch], lambda r: _pixels(r["size"]), lambda r: r.get(key))
        _size_axis(ax, (r["size"] for r in panel))
        ax.set_ylabel(label)
        ax.set_title(f"{task}, {backend}, {precision}, batch {batch}", fontsize=10)
    _depth_legend(figure, axes)
    return save_figure(figure, path)


def backend_speedups(rows: list[Row], path: Path) -> Path | None:
    """Speed-up of each backend over eager PyTorch, a group of bars per (task, depth, size, batch, precision)."""
    others = sorted({r["backend"] for r in rows if r.get("speedup") and r["backend"] != "eager"})
    if not others:
        return None
    keys = ("task", "backbone", "size", "batch", "precision")
    groups = _panels([r for r in rows if r.get("speedup") and r["backend"] != "eager"], keys)
    varying = [i for i, key in enumerate(keys) if len({group[i] for group in groups}) > 1] or [1]
    common = ", ".join(str(v) for i, v in enumerate(next(iter(groups))) if i not in varying)
    height = 0.8 / len(others)
    figure, ax = plt.subplots(figsize=(9, 1.4 + (0.2 * len(others) + 0.12) * len(groups)), layout="constrained")
    labelled = set()
    for g, (group_key, group) in enumerate(groups.items()):
        for b, backend in enumerate(others):
            speedup = next((r["speedup"] for r in group if r["backend"] == backend), None)
            if speedup is not None:
                bar = ax.barh(g + (b - (len(others) - 1) / 2) * height, speedup - 1.0, height, left=1.0,
                              color=BACKEND_COLORS[backend], label=None if backend in labelled else backend)
                labelled.add(backend)
                ax.bar_label(bar, [f"{speedup:.2f}x"], fontsize=7, padding=2)
    labels = [" ".join(f"b{v}" if keys[i] == "batch" else str(v) for i, v in enumerate(k) if i in varying)
              for k in groups]
    ax.set_yticks(range(len(groups)), labels, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")  # bars from 1x: right of the line is faster than eager, left slower
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.set_xlim(min(0.8, min(r["speedup"] for r in rows if r.get("speedup")) / 1.3),
                max(r["speedup"] for r in rows if r.get("speedup")) * 2.0)
    ax.set_xlabel("speed-up: eager median / backend median, eager of the same precision (int8: of fp32); log")
    ax.set_title(f"Backend speed-ups{f' ({common})' if common else ''}", fontsize=12)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, axis="x", alpha=0.3)
    return save_figure(figure, path)


def write_plots(rows: list[Row], output_dir: Path) -> list[Path]:
    """Write the plots the sweep has data for (a plot needs two sizes, two batches or two backends)."""
    measured = [r for r in rows if r.get("median_ms") is not None]
    plots = [latency_vs_size(measured, output_dir / "latency_vs_size.png"),
             throughput_vs_batch(measured, output_dir / "throughput_vs_batch.png"),
             memory_vs_size(measured, output_dir / "memory_vs_size.png"),
             backend_speedups(measured, output_dir / "backend_speedups.png")]
    return [p for p in plots if p is not None]
