"""Timing one callable right: warm-up, then timed calls until a time budget, synchronized on a GPU; FLOPs; peaks."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from detect.utils.cpu import cpu_description, cpu_flags, isa_cap, max_clock_ghz, ops_per_cycle, peak_gflops
from detect.utils.device import PRECISIONS
from detect.utils.timing import DeviceTimer, peak_rss_mb, summarize


@dataclass
class Timing:
    """Per-call milliseconds of one point: `wall_ms` host clock (synchronized before and after on a GPU),
    `event_ms` CUDA-event time of the same calls, `unsynchronized_ms` a naive host clock (GPU only);
    `system_share` the part of the process's CPU time the timed calls spent in the kernel (page faults...),
    `other_cores` the CPU cores other processes (or the hypervisor) kept busy meanwhile, on average."""

    wall_ms: list[float]
    warmup_runs: int
    first_call_ms: float
    system_share: float = float("nan")
    other_cores: float = float("nan")
    event_ms: list[float] = field(default_factory=list)
    unsynchronized_ms: list[float] = field(default_factory=list)


def keep_timing(runs: int, elapsed_s: float, budget_s: float, min_runs: int, max_runs: int) -> bool:
    """Whether to time another call: until `budget_s` is spent and `min_runs` are done, never past `max_runs`."""
    return runs < max_runs and (runs < min_runs or elapsed_s < budget_s)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device | str, warmup_runs: int = 2, warmup_s: float = 1.0,
               budget_s: float = 2.0, min_runs: int = 5, max_runs: int = 300, unsynchronized_runs: int = 0,
               cuda_events: bool = True) -> Timing:
    """Warm up until `warmup_runs` calls and `warmup_s` seconds, then time calls one by one until the budget.

    On a GPU every timed call sits between two `torch.cuda.synchronize` (its wall time) and two CUDA events on
    torch's stream (`cuda_events=False` for work on another stream, as ONNX Runtime's); `unsynchronized_runs` more
    calls are then timed without synchronizing, as naive code would.
    """
    device = torch.device(device)
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    first_call_ms = (time.perf_counter() - start) * 1000.0
    warmups = 1
    while warmups < warmup_runs or time.perf_counter() - start < warmup_s:
        fn()
        warmups += 1
    _synchronize(device)

    timing = Timing([], warmups, first_call_ms)
    usage, machine_busy_s = resource.getrusage(resource.RUSAGE_SELF), busy_cpu_seconds()
    start = time.perf_counter()
    while keep_timing(len(timing.wall_ms), time.perf_counter() - start, budget_s, min_runs, max_runs):
        t0 = time.perf_counter()
        with DeviceTimer(device if cuda_events else "cpu") as timer:
            fn()
        _synchronize(device)
        timing.wall_ms.append((time.perf_counter() - t0) * 1000.0)
        if timer.cuda:
            timing.event_ms.append(timer.elapsed_ms)
    elapsed_s = time.perf_counter() - start
    end_usage, end_machine_busy_s = resource.getrusage(resource.RUSAGE_SELF), busy_cpu_seconds()
    user_s, system_s = end_usage.ru_utime - usage.ru_utime, end_usage.ru_stime - usage.ru_stime
    timing.system_share = system_s / (user_s + system_s) if user_s + system_s > 0 else float("nan")
    if machine_busy_s is not None and end_machine_busy_s is not None:
        timing.other_cores = max(0.0, end_machine_busy_s - machine_busy_s - user_s - system_s) / elapsed_s
    if device.type == "cuda":
        for _ in range(unsynchronized_runs):
            t0 = time.perf_counter()
            fn()
            timing.unsynchronized_ms.append((time.perf_counter() - t0) * 1000.0)
        _synchronize(device)
    return timing


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot, stolen time included (Linux /proc/stat), else None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call as torch.utils.flop_counter counts them: 2 per multiply-add of convolutions and matmuls;
    elementwise ops and custom kernels (RoIAlign, NMS) are not counted."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_tflops(device: torch.device | str, dtype: torch.dtype, side: int, budget_s: float = 1.0) -> float:
    """Median TFLOP/s of a `side`-square matmul in `dtype` on `device`: the peak this machine reaches right now.
    The product goes to one preallocated tensor, so no call pays for fresh memory."""
    a, b, product = (torch.rand(side, side, device=device, dtype=dtype) for _ in range(3))
    timing = time_calls(lambda: torch.matmul(a, b, out=product), device, warmup_runs=2, warmup_s=0.2, budget_s=budget_s, min_runs=3)
    median_ms = summarize(timing.event_ms or timing.wall_ms)["p50"]
    return 2 * side**3 / (median_ms / 1000.0) / 1e12


def conv_gflops(channels: int = 1024, side: int = 64, budget_s: float = 1.0) -> float:
    """Median fp32 GFLOP/s of a 1x1 convolution (a `channels`-square matmul over side x side pixels) on the CPU. It
    runs on oneDNN, which stops at ONEDNN_MAX_CPU_ISA where that is set (MKL's matmul does not): the rate of the
    kernels that run, at the clock they run at."""
    image = torch.rand(1, channels, side, side)
    weight = torch.rand(channels, channels, 1, 1)
    with torch.no_grad():
        timing = time_calls(lambda: torch.nn.functional.conv2d(image, weight), torch.device("cpu"), warmup_runs=2,
                            warmup_s=0.2, budget_s=budget_s, min_runs=3)
    return 2 * channels**2 * side**2 / (summarize(timing.wall_ms)["p50"] / 1000.0) / 1e9


@cache
def best_matmul_tflops(device: str, precision: str, side: int) -> float:
    """The best of three `matmul_tflops` in `precision`, measured once per process (every row gets the same peak)."""
    return max(matmul_tflops(device, PRECISIONS[precision], side) for _ in range(3))


def peak_tflops(device: torch.device, precision: str, side: int) -> tuple[float, str]:
    """An upper bound on the TFLOP/s of `device` in `precision`, and how it was found.

    CPU: cores x clock x operations per cycle of the units its kernels may use (`detect.utils.cpu.peak_gflops`, for
    the threads torch uses), where the clock is the highest one the system states or, if higher, the one a measured
    fp32 rate proves (a VM states its base clock; the cores boost, and boost higher on narrower units): MKL's matmul
    on all of the CPU's units, and oneDNN's 1x1 convolution on the units ONEDNN_MAX_CPU_ISA leaves it.
    GPU: the measured matmul (a datasheet peak is not read here)."""
    if device.type != "cpu":
        return best_matmul_tflops(str(device), precision, side), f"{side}-square {precision} matmul measured now"
    threads = torch.get_num_threads()
    matmul = best_matmul_tflops("cpu", "fp32", side) * 1000.0
    conv = best_conv_gflops()
    clock = max(max_clock_ghz(), matmul / (threads * ops_per_cycle("fp32", cpu_flags())),
                conv / (threads * ops_per_cycle("fp32")))
    return peak_gflops(precision, threads, clock) / 1000.0, (
        f"{threads} cores x {clock:.2f} GHz x {ops_per_cycle(precision)} {precision} operations per cycle of "
        f"{cpu_description()}{isa_cap()}; clock: the highest of the stated {max_clock_ghz():.2f} GHz and what a "
        f"{side}-square fp32 matmul ({matmul:.0f} GFLOP/s) and a 1x1 convolution ({conv:.0f} GFLOP/s) prove")


@cache
def best_conv_gflops() -> float:
    """The best of three `conv_gflops`, measured once per process."""
    return max(conv_gflops() for _ in range(3))


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: VmHWM back to the current RSS); elsewhere the peak stays the process's."""
    if _CLEAR_REFS.exists():
        _CLEAR_REFS.write_text("5")


def _status_mib(key: str) -> float | None:
    """A memory line of Linux's /proc/self/status (VmRSS, VmHWM ...) in MiB; None where there is none."""
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024.0
    return None


def rss_mb() -> float:
    """Resident memory now, in MiB (Linux; NaN elsewhere)."""
    value = _status_mib("VmRSS")
    return value if value is not None else float("nan")


def peak_rss_since_reset_mb() -> float:
    """Peak resident memory since `reset_peak_rss`, in MiB (the process's peak where Linux's VmHWM is missing)."""
    value = _status_mib("VmHWM")
    return value if value is not None else peak_rss_mb()
