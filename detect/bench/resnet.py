"""The ResNet sweep: every combination of task, depth, input size, batch, precision and backend, timed right.

For each point: parameters, FLOPs counted for its input, median/p90/p99 latency, throughput, peak memory, achieved
TFLOP/s and its share of a matmul peak measured on the spot. ONNX Runtime points are checked against PyTorch first.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from detect.bench.measure import count_flops, peak_rss_since_reset_mb, peak_tflops, reset_peak_rss, time_calls
from detect.bench.plots import write_plots
from detect.bench.resnet_report import add_speedups, gpu_timer_line, markdown_table, method_text, write_csv
from detect.export.onnx_export import TASKS, build_network, export_onnx, parse_size
from detect.export.onnx_runtime import OnnxDetector, OnnxModel
from detect.export.parity import check_parity
from detect.modeling.model import BACKBONES
from detect.utils.device import PRECISIONS, resolve_device
from detect.utils.errors import DetectError, check_choice, first_line
from detect.utils.timing import cuda_memory_mb, reset_cuda_peaks, summarize

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime")


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
                                 ("precision", precisions, PRECISIONS), ("backend", backends, BACKENDS)):
        for value in values:
            check_choice(key, value, allowed)
    sizes = ["{}x{}".format(*parse_size(size)) for size in _as_list(cfg.size)]
    batches = [int(batch) for batch in _as_list(cfg.batch)]
    if min(batches) < 1:
        raise DetectError(f"batch={batches} must be >= 1")
    axes = itertools.product(tasks, backbones, sizes, batches, precisions, backends)
    return [Point(*values) for values in axes]


def network_config(cfg: DictConfig, task: str, backbone: str, size: str) -> DictConfig:
    """The `model` config for `backbone`; the detector's resize keeps a `size` image as it is."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.name = backbone
    if task == "detector":
        height, width = parse_size(size)
        model_cfg.min_size, model_cfg.max_size = min(height, width), max(height, width)
    return model_cfg


def random_inputs(task: str, size: str, batch: int, dtype: torch.dtype, device: torch.device,
                  seed: int) -> torch.Tensor | list[torch.Tensor]:
    """Uniform 0..1 images (never zeros): a batch tensor, or a list of 3xHxW images for the detector."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, *parse_size(size), generator=generator).to(device, dtype)
    return list(images) if task == "detector" else images


class Workload:
    """The network of (task, backbone[, detector size]): its parameters, FLOPs and ONNX export. Every point gets a
    fresh copy of the same weights (`network`), so that no other copy sits beside it in the memory it measures."""

    def __init__(self, cfg: DictConfig, task: str, backbone: str, size: str, device: torch.device) -> None:
        self.cfg, self.task, self.backbone, self.size, self.device = cfg, task, backbone, size, device
        self.params = sum(p.numel() for p in self.network("cpu").parameters())
        self.onnx_path = Path(cfg.output_dir) / "onnx" / f"{task}_{backbone}_{size if task == 'detector' else 'any'}.onnx"
        self._gflops: dict[str, float] = {}
        self._runner: OnnxModel | OnnxDetector | None = None

    def network(self, device: torch.device | str | None = None) -> torch.nn.Module:
        """A new fp32 eager network with the workload's weights (seeded), on `device` (default: the workload's)."""
        torch.manual_seed(self.cfg.seed)
        network, _ = build_network(self.task, network_config(self.cfg, self.task, self.backbone, self.size),
                                   self.cfg.classifier_classes, self.cfg.detector_classes)
        return network.to(device or self.device)

    def gflops_per_image(self, size: str) -> float:
        if size not in self._gflops:
            images = random_inputs(self.task, size, 1, torch.float32, self.device, self.cfg.seed)
            network = self.network()
            with torch.inference_mode():
                self._gflops[size] = count_flops(lambda: network(images)) / 1e9
        return self._gflops[size]

    def onnx_runner(self, size: str) -> OnnxModel | OnnxDetector:
        """Export once (traced at `size`, any size runs) and open it in ONNX Runtime on the device."""
        if self._runner is None:
            example = random_inputs(self.task, size, 1, torch.float32, torch.device("cpu"), self.cfg.seed)
            export_onnx(self.network("cpu"), self.task, example[0] if self.task == "detector" else example,
                        self.onnx_path, self.cfg.onnxruntime.opset, {"task": self.task})
            runner_class = OnnxDetector if self.task == "detector" else OnnxModel
            self._runner = runner_class(self.onnx_path, self.device, self.cfg.onnxruntime.threads,
                                        self.cfg.onnxruntime.optimization)
        return self._runner


def _skip_reason(point: Point, device: torch.device) -> str | None:
    if point.backend == "onnxruntime" and point.precision != "fp32":
        return "onnxruntime runs the fp32 export"
    if point.backend == "onnxruntime" and device.type != "cpu":
        return "onnxruntime runs on the CPU only (the CPU wheel)"
    if point.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return None


def prepare_call(point: Point, workload: Workload, inputs: Any, parity_cfg: Any) -> tuple[Callable[[], Any], str]:
    """The call to time for `point`'s backend, and the parity summary for ONNX Runtime (empty otherwise).

    Raises DetectError when the ONNX model does not reproduce PyTorch. The network is built for the point alone.
    """
    if point.backend == "onnxruntime":
        runner = workload.onnx_runner(point.size)
        parity = check_parity(workload.network(), point.task, runner, inputs, parity_cfg)
        if not parity.ok:
            raise DetectError(f"ONNX parity failed: {parity.summary}")
        if point.task == "detector":
            return lambda: runner(inputs), parity.summary
        binding = runner.bind(images=inputs)
        return lambda: runner.run(binding), parity.summary
    network = workload.network().to(PRECISIONS[point.precision])
    if point.backend == "channels_last":
        network = network.to(memory_format=torch.channels_last)
    if point.backend == "compile":
        network = torch.compile(network)
    return lambda: network(inputs), ""


def run_point(point: Point, workload: Workload, cfg: DictConfig, device: torch.device,
              peaks: dict[str, float]) -> dict[str, Any]:
    """Measure one point; a point the device or backend cannot run comes back with a note instead of figures."""
    row: dict[str, Any] = {**asdict(point), "device": str(device), "params_m": workload.params / 1e6}
    reason = _skip_reason(point, device)
    if reason:
        return row | {"note": f"skipped: {reason}"}
    dtype = PRECISIONS[point.precision]
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
                                cuda_events=point.backend != "onnxruntime")
    except (RuntimeError, NotImplementedError, DetectError) as error:  # a kernel missing for a dtype, a parity miss
        return row | {"gflops_per_image": gflops, "note": f"failed: {first_line(error, typed=False)}"}
    memory = cuda_memory_mb(device)
    peak_rss = peak_rss_since_reset_mb() if device.type == "cpu" else None
    if point.precision not in peaks:  # after the memory peaks: the matmul's tensors are not the point's
        peaks[point.precision] = peak_tflops(device, point.precision, cfg.peak_matmul[device.type])
    stats = summarize(timing.wall_ms)
    tflops = gflops * point.batch / stats["p50"]  # GFLOP per ms = TFLOP/s
    row |= {
        "gflops_per_image": gflops,
        "median_ms": stats["p50"], "p90_ms": stats["p90"], "p99_ms": stats["p99"], "mean_ms": stats["mean"],
        "img_per_s": point.batch / stats["p50"] * 1000.0,
        "tflops": tflops, "peak_tflops": peaks[point.precision][0], "peak_share": tflops / peaks[point.precision][0],
        "vram_alloc_mib": memory.get("peak_allocated") if point.backend != "onnxruntime" else None,
        "vram_reserved_mib": memory.get("peak_reserved") if point.backend != "onnxruntime" else None,
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
                   else row["note"])
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
