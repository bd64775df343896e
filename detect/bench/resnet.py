"""The ResNet sweep: every combination of task, depth, input size, batch, precision and backend, timed right.

For each point: parameters, FLOPs counted for its input, median/p90/p99 latency, throughput, peak memory, achieved
TFLOP/s and its share of a matmul peak measured on the spot. The runtimes (ONNX Runtime, OpenVINO fp32 / bf16 / int8,
OpenCV DNN: `detect.bench.runtimes`) are checked against PyTorch first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from detect.bench.measure import peak_rss_since_reset_mb, peak_tflops, reset_peak_rss, time_calls
from detect.bench.plots import write_plots
from detect.bench.resnet_report import add_speedups, gpu_timer_line, markdown_table, method_text, write_csv
from detect.bench.runtimes import RUNTIMES, Workload, random_inputs, runtime_call
from detect.export.onnx_export import TASKS, parse_size
from detect.export.openvino_runtime import PRECISION_HINTS
from detect.modeling.model import BACKBONES
from detect.utils.cpu import lacks_fast_units
from detect.utils.device import PRECISIONS, resolve_device
from detect.utils.errors import DetectError, check_choice, first_line
from detect.utils.timing import cuda_memory_mb, reset_cuda_peaks, summarize

BACKENDS = ("eager", "channels_last", "compile", *RUNTIMES)
SWEEP_PRECISIONS = (*PRECISIONS, "int8")  # int8: OpenVINO only (NNCF)


@dataclass(frozen=True)
class Point:
    """One combination of the sweep's axes."""

    task: str
    backbone: str
    size: str  # HxW
    batch: int
    precision: str
    backend: str


def _as_list(value: Any) -> list:
    return list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else [value]


def sweep_points(cfg: DictConfig) -> list[Point]:
    """The points of the sweep, in the order they run (the network changes as rarely as possible)."""
    tasks, backbones = _as_list(cfg.task), _as_list(cfg.backbone)
    precisions, backends = _as_list(cfg.precision), _as_list(cfg.backend)
    for key, values, allowed in (("task", tasks, TASKS), ("backbone", backbones, BACKBONES),
                                 ("precision", precisions, SWEEP_PRECISIONS), ("backend", backends, BACKENDS)):
        for value in values:
            check_choice(key, value, allowed)
    sizes = ["{}x{}".format(*parse_size(size)) for size in _as_list(cfg.size)]
    batches = [int(batch) for batch in _as_list(cfg.batch)]
    if min(batches) < 1:
        raise DetectError(f"batch={batches} must be >= 1")
    axes = itertools.product(tasks, backbones, sizes, batches, precisions, backends)
    return [Point(*values) for values in axes]


def _skip_reason(point: Point, device: torch.device) -> str | None:
    if point.backend in RUNTIMES and device.type != "cpu":
        return f"{point.backend} runs on the CPU here"
    if point.precision == "int8" and point.backend != "openvino":
        return "int8 runs on openvino only (NNCF's quantization)"
    if point.backend in ("onnxruntime", "opencv") and point.precision != "fp32":
        return f"{point.backend} runs the fp32 export"
    if point.backend == "openvino" and point.precision not in PRECISION_HINTS:
        return f"openvino runs {', '.join(PRECISION_HINTS)} here"
    if point.backend == "openvino" and lacks_fast_units(point.precision):
        return f"{lacks_fast_units(point.precision)} (OpenVINO would run fp32)"
    if point.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return None


def prepare_call(point: Point, workload: Workload, inputs: Any, parity_cfg: Any) -> tuple[Callable[[], Any], str]:
    """The call to time for `point`'s backend, and the parity summary of a runtime point (empty for PyTorch).

    Raises DetectError when a runtime does not reproduce PyTorch. The network is built for the point alone.
    """
    if point.backend in RUNTIMES:
        return runtime_call(point.backend, point.precision, workload, point.size, inputs, parity_cfg)
    network = workload.network().to(PRECISIONS[point.precision])
    if point.backend == "channels_last":
        network = network.to(memory_format=torch.channels_last)
    if point.backend == "compile":
        network = torch.compile(network)
    return lambda: network(inputs), ""


def run_point(point: Point, workload: Workload, cfg: DictConfig, device: torch.device,
              peaks: dict[str, float]) -> dict[str, Any]:
    """Measure one point: status "measured", or "skipped" / "failed" with the reason in its note instead of figures."""
    row: dict[str, Any] = {**asdict(point), "device": str(device), "params_m": workload.params / 1e6}
    reason = _skip_reason(point, device)
    if reason:
        return row | {"status": "skipped", "note": reason}
    runtime = point.backend in RUNTIMES
    dtype = torch.float32 if runtime else PRECISIONS[point.precision]  # a runtime reads the fp32 export's input
    inputs = random_inputs(point.task, point.size, point.batch, dtype, device, cfg.seed + 1)
    if point.backend == "channels_last" and point.task != "detector":
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    gflops = workload.gflops_per_image(point.size)
    try:
        with torch.inference_mode():
            call, parity = prepare_call(point, workload, inputs, cfg.parity)
            reset_peak_rss()
            reset_cuda_peaks(device, release_cached=True)
            timing = time_calls(call, device, cfg.warmup.min_runs, cfg.warmup.min_s, cfg.repeats.budget_s,
                                cfg.repeats.min_runs, cfg.repeats.max_runs, cfg.unsynchronized_runs,
                                cuda_events=not runtime)
    except (RuntimeError, NotImplementedError, DetectError) as error:  # a kernel missing for a dtype, a parity miss
        return row | {"gflops_per_image": gflops, "status": "failed", "note": first_line(error, typed=False)}
    memory = cuda_memory_mb(device)
    peak_rss = peak_rss_since_reset_mb() if device.type == "cpu" else None
    if point.precision not in peaks:  # after the memory peaks: the matmul's tensors are not the point's
        peaks[point.precision] = peak_tflops(device, point.precision, cfg.peak_matmul[device.type])
    stats = summarize(timing.wall_ms)
    tflops = gflops * point.batch / stats["p50"]  # GFLOP per ms = TFLOP/s
    row |= {
        "status": "measured", "gflops_per_image": gflops,
        "median_ms": stats["p50"], "p90_ms": stats["p90"], "p99_ms": stats["p99"], "mean_ms": stats["mean"],
        "img_per_s": point.batch / stats["p50"] * 1000.0,
        "tflops": tflops, "peak_tflops": peaks[point.precision][0], "peak_share": tflops / peaks[point.precision][0],
        "vram_alloc_mib": None if runtime else memory.get("peak_allocated"),
        "vram_reserved_mib": None if runtime else memory.get("peak_reserved"),
        "peak_rss_mib": peak_rss,
        "cpu_system_share": timing.system_share, "other_cores": timing.other_cores,
        "warmup_runs": timing.warmup_runs, "first_call_ms": timing.first_call_ms, "runs": stats["n"],
        "event_ms": summarize(timing.event_ms)["p50"] if timing.event_ms else None,
        "unsync_ms": summarize(timing.unsynchronized_ms)["p50"] if timing.unsynchronized_ms else None,
        "parity": parity,
    }
    return row


def run_sweep(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run every point of the sweep, printing as it goes; write bench.csv, table.md and the plots to output_dir."""
    points = sweep_points(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    method = method_text(cfg, device)
    print(method, flush=True)
    rows: list[dict[str, Any]] = []
    peaks: dict[str, tuple[float, str]] = {}
    workload, workload_key = None, None
    for i, point in enumerate(points, 1):
        key = (point.task, point.backbone, point.size if point.task == "detector" else "")
        if key != workload_key:
            workload, workload_key = None, key  # free the previous network before building the next
            workload = Workload(cfg, point.task, point.backbone, point.size, device)
        row = run_point(point, workload, cfg, device, peaks)
        rows.append(row)
        write_csv(rows, output_dir / "bench.csv")  # a sweep cut short keeps what it measured
        figures = (f"median {row['median_ms']:.2f} ms, {row['img_per_s']:.1f} img/s" if "median_ms" in row
                   else f"{row['status']}: {row['note']}")
        print(f"[{i}/{len(points)}] {point.task} {point.backbone} {point.size} batch {point.batch} "
              f"{point.precision} {point.backend}: {figures}" + (f"; parity {row['parity']}" if row.get("parity") else ""),
              flush=True)
        if row.get("event_ms") is not None:
            print(gpu_timer_line(row), flush=True)
    add_speedups(rows)
    write_csv(rows, output_dir / "bench.csv")
    table = markdown_table(rows)
    peak_text = "; ".join(f"{p} {tflops:.3g} TFLOP/s ({source})" for p, (tflops, source) in peaks.items())
    report = f"{method}\n\nPeak: {peak_text or 'none'}\n\n{table}\n"
    (output_dir / "table.md").write_text(report)
    plots = write_plots(rows, output_dir)
    print(f"\n{table}\n\nPeak: {peak_text or 'none'}")
    print(f"wrote {output_dir / 'bench.csv'}, {output_dir / 'table.md'}" +
          "".join(f", {p}" for p in plots), flush=True)
    return rows
