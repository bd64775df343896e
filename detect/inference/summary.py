"""The end-of-run summary of infer.py: what ran on what, per-stage statistics, throughput and memory."""

from __future__ import annotations

import math
from typing import Any

from detect.evaluation.mot import format_tracking_metrics
from detect.tracking.counting import format_counts

SUMMED = ("frames", "measured_frames", "detections", "corrupt_frames", "dropped_frames", "gaps", "seconds_lost",
          "frames_lost")  # the per-source counts a summary of several sources adds up


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
        f"{summary['corrupt_frames']} corrupt skipped, {summary['dropped_frames']} dropped"
        + (f", {summary['gaps']} gaps: {summary['seconds_lost']:.1f} s, ~{summary['frames_lost']} frames lost"
           if summary["gaps"] else "") + "); "
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


def sources_summary(rows: list[dict[str, Any]], failed: list[dict[str, str]], total_wall_s: float) -> dict[str, Any]:
    """summary.json of several sources: each source's summary, the sources that did not open, and the totals."""
    measured = sum(row["measured_frames"] for row in rows)
    walls = [row["measured_wall_s"] for row in rows if row["measured_wall_s"] is not None]
    return finite({
        "sources": rows, "failed": failed,
        "total": {"sources": len(rows) + len(failed), "running": len(rows), "failed": len(failed),
                  **{key: sum(row[key] for row in rows) for key in SUMMED},
                  "throughput_fps": measured / max(walls) if walls and measured else float("nan"),
                  "total_wall_s": total_wall_s, "peak_rss_mb": max(row["peak_rss_mb"] for row in rows)},
    })


def format_sources(summary: dict[str, Any]) -> str:
    """The end-of-run table of several sources: a row per source, the failed ones, the totals."""
    first = summary["sources"][0]
    lines = [f"{'device':<12}{first['device']}", f"{'model':<12}{first['model']}, {len(first['classes'])} classes",
             f"{'source':<40}{'frames':>8}{'detections':>11}{'FPS':>8}{'e2e p50 ms':>11}{'gaps':>6}  stopped"]
    for row in summary["sources"]:
        p50 = row["stages_ms"]["end_to_end"]["p50"]
        lines.append(f"{row['source'][-40:]:<40}{row['frames']:>8}{row['detections']:>11}"
                     f"{row['throughput_fps'] or 0:>8.2f}{p50 if p50 is not None else float('nan'):>11.1f}"
                     f"{row['gaps']:>6}  {row['stopped_by']}")
    for failure in summary["failed"]:
        lines.append(f"{failure['source'][-40:]:<40}{'failed':>8}  {failure['error']}")
    total = summary["total"]
    lines.append(f"{'total':<40}{total['frames']:>8}{total['detections']:>11}{total['throughput_fps'] or 0:>8.2f}"
                 f"{'':>11}{total['gaps']:>6}  {total['running']} of {total['sources']} sources ran, "
                 f"{total['total_wall_s']:.1f} s")
    return "\n".join(lines)
