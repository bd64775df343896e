"""The end-of-run summary of infer.py: what ran on what, per-stage statistics, throughput and memory."""

from __future__ import annotations

import math
from typing import Any

import torch

from detect.cpu import cpu_description
from detect.inference.counting import format_counts
from detect.mot import format_tracking_metrics


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_description()}, {torch.get_num_threads()} threads)"


def finite(value: Any) -> Any:
    """NaN (no frames measured) as null, so summary.json stays valid JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _size_text(size: list[int] | None) -> str:
    return "x".join(map(str, size)) if size else "?"


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table: what ran, on what, how fast each stage was, memory."""
    options = ", ".join([summary["precision"]] + [name for name in ("channels_last", "compile") if summary[name]])
    peak_vram = ""
    if summary["peak_vram_allocated_mb"] is not None:
        peak_vram = (f"; peak VRAM {summary['peak_vram_allocated_mb']:.0f} MiB allocated, "
                     f"{summary['peak_vram_reserved_mb']:.0f} MiB reserved (after warm-up)")
    lines = [
        f"{'device':<12}{summary['device']}",
        f"{'model':<12}{summary['model']}, {len(summary['classes'])} classes, {options}",
        f"{'input':<12}frames {_size_text(summary['frame_size'])} (HxW) -> network "
        f"{_size_text(summary['network_input_size'])} (padded {_size_text(summary['padded_input_size'])})",
        f"{'frames':<12}{summary['frames']} ({summary['warmup_frames']} warm-up left out of the statistics, "
        f"{summary['corrupt_frames']} corrupt skipped, {summary['dropped_frames']} dropped); "
        f"stopped: {summary['stopped_by']}; {summary['detections']} detections",
        f"{'stage (ms)':<14}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
    ]
    for stage, stats in summary["stages_ms"].items():
        values = [stats[k] for k in ("mean", "p50", "p90", "p99", "max")]
        lines.append(f"  {stage.replace('_', '+' if stage == 'draw_write' else '-'):<12}"
                     + "".join(f"{v:>9.1f}" if v is not None else f"{'-':>9}" for v in values))
    fps = summary["throughput_fps"]
    lines += [
        f"{'throughput':<12}" + (f"{fps:.2f} FPS ({summary['measured_frames']} frames in "
                                 f"{summary['measured_wall_s']:.1f} s)" if fps else "- (no frame after warm-up)"),
        f"{'memory':<12}peak RSS {summary['peak_rss_mb']:.0f} MiB{peak_vram}",
    ]
    if "tracker" in summary:
        lines.append(f"{'tracking':<12}{summary['tracker']}: {summary['tracks']} tracks")
    if "tracking_metrics" in summary:
        lines.append(f"{'vs gt':<12}{format_tracking_metrics(summary['tracking_metrics'])}")
    if "zones" in summary:
        lines.append(f"{'counting':<12}{format_counts(summary['zones'], summary.get('counting_error'))}")
    lines.append(f"{'outputs':<12}{', '.join(str(path) for path in summary['outputs'].values() if path)}")
    return "\n".join(lines)
