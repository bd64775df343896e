"""The ResNet sweep's report: speed-ups against eager, bench.csv, the markdown table and the method printed above it."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import cv2
import onnxruntime as ort
import openvino as ov
import torch
from omegaconf import DictConfig


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """`speedup`: the eager median of the same task, depth, size, batch and precision over this point's median
    (eager fp32 for int8, which PyTorch does not run here)."""
    eager = {(r["task"], r["backbone"], r["size"], r["batch"], r["precision"]): r.get("median_ms")
             for r in rows if r["backend"] == "eager"}
    for row in rows:
        precision = "fp32" if row["precision"] == "int8" else row["precision"]
        base = eager.get((row["task"], row["backbone"], row["size"], row["batch"], precision))
        row["speedup"] = base / row["median_ms"] if base and row.get("median_ms") else None


COLUMNS = ["task", "backbone", "size", "batch", "precision", "backend", "device", "status", "params_m", "gflops_per_image",
           "median_ms", "p90_ms", "p99_ms", "mean_ms", "img_per_s", "tflops", "peak_tflops", "peak_share", "speedup",
           "vram_alloc_mib", "vram_reserved_mib", "peak_rss_mib", "cpu_system_share", "other_cores", "warmup_runs", "first_call_ms", "runs", "event_ms",
           "unsync_ms", "parity", "note"]


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The points as a markdown table: latency in ms per call (one batch), memory in MiB."""
    cpu = all(r["device"] == "cpu" for r in rows)
    header = ["task", "backbone", "size", "batch", "prec", "backend", "params M", "GFLOP/img", "median ms", "p90 ms",
              "p99 ms", "img/s", "TFLOP/s", "% of peak", "vs eager", "peak RSS MiB" if cpu else "VRAM alloc/res MiB",
              "sys CPU", "other cores", "warm-up", "runs", "status", "note / parity"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        memory = _fmt(r.get("peak_rss_mib"), 4) if cpu else (
            f"{_fmt(r.get('vram_alloc_mib'), 4)}/{_fmt(r.get('vram_reserved_mib'), 4)}" if r.get("vram_alloc_mib") else "")
        share = r.get("peak_share")
        cells = [r["task"], r["backbone"], r["size"], r["batch"], r["precision"], r["backend"], _fmt(r["params_m"]),
                 _fmt(r.get("gflops_per_image")), _fmt(r.get("median_ms")), _fmt(r.get("p90_ms")),
                 _fmt(r.get("p99_ms")), _fmt(r.get("img_per_s")), _fmt(r.get("tflops"), 2),
                 (f"{share:.0%}" if share <= 1 else "above bound") if share else "",
                 f"{r['speedup']:.2f}x" if r.get("speedup") else "", memory,
                 f"{r['cpu_system_share']:.0%}" if r.get("cpu_system_share") is not None else "",
                 _fmt(r.get("other_cores"), 2),
                 _fmt(r.get("warmup_runs")), _fmt(r.get("runs")), r["status"], r.get("note") or r.get("parity") or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def method_text(cfg: DictConfig, device: torch.device) -> str:
    """How the figures were taken, printed above the table."""
    clock = ("host clock with torch.cuda.synchronize() before and after every call, cross-checked by CUDA events "
             "around the same calls" if device.type == "cuda" else "host clock (time.perf_counter) around every call")
    lines = [
        (f"device {device}, {torch.get_num_threads()} torch threads, ONNX Runtime intra-op threads "
         f"{cfg.onnxruntime.threads or torch.get_num_threads()} (graph optimization {cfg.onnxruntime.optimization}); "
         f"torch {torch.__version__}, onnxruntime {ort.__version__}, OpenVINO {ov.__version__.split('-')[0]} "
         f"(CPU plugin, LATENCY hint, the input's shape compiled), OpenCV {cv2.__version__} DNN (its CPU backend)"),
        (f"per point: warm-up until >= {cfg.warmup.min_runs} calls and >= {cfg.warmup.min_s:g} s, then calls timed one "
         f"by one ({clock}) until {cfg.repeats.budget_s:g} s and >= {cfg.repeats.min_runs} calls "
         f"(at most {cfg.repeats.max_runs})"),
        "latency: one call on one batch (median, p90, p99); img/s = batch / median",
        (f"inputs: uniform random images (seed {cfg.seed}, never zeros); random weights unless model.weights is set; "
         "the detector runs at the given size (its resize is set to keep it)"),
        "FLOPs: torch.utils.flop_counter on one image, 2 per multiply-add, convolutions and matmuls only",
        ("peak: an upper bound per precision (`detect.bench.measure.peak_tflops`, named under the table); TFLOP/s = "
         "counted FLOPs / median latency; a point above the bound is marked (its engine ran fewer operations than "
         "the direct convolutions counted: Winograd)"),
        ("memory: peak RSS of the process during the point (CPU) or peak CUDA-allocator memory (GPU); "
         "sys CPU: the part of this process's CPU time spent in the kernel (page faults of freed and re-allocated "
         "tensors); other cores: CPU cores other processes or the hypervisor kept busy during the timed calls "
         "(above 0.1 they slowed the figures)"),
        ("runtime points (onnxruntime, openvino, opencv: the same ONNX export) are first checked against PyTorch fp32 "
         "eager on the point's own input (parity column); fp32 must match (logits_rel, box_px), OpenVINO bf16 and int8 "
         f"get looser bounds (bf16_rel {cfg.parity.bf16_rel:g}, int8_rel {cfg.parity.int8_rel:g} of the largest output; "
         "the detector: boxes agreeing both ways); a point that misses is reported failed, not timed"),
        (f"int8: NNCF post-training quantization calibrated on {cfg.int8_calibration} random images of the point's "
         "size (fit for timing; its accuracy on real images is the format table's); vs eager: eager fp32"),
    ]
    return "Method:\n- " + "\n- ".join(lines)


def gpu_timer_line(row: dict[str, Any]) -> str:
    """Wall clock with synchronize vs CUDA events vs a naive unsynchronized clock, for one GPU point."""
    wall, event, unsync = row["median_ms"], row["event_ms"], row["unsync_ms"]
    gap = abs(wall - event) / event
    return (f"timers for {row['task']} {row['backbone']} {row['size']} batch {row['batch']} {row['precision']} "
            f"{row['backend']}: wall-clock with synchronize {wall:.3f} ms vs CUDA events {event:.3f} ms "
            f"({gap:.1%} apart: {'agree' if gap <= 0.05 else 'DISAGREE'} within 5%); an unsynchronized timer "
            f"reports {unsync:.3f} ms")
