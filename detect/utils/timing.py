"""Correct timing on CPU and GPU: CUDA events around GPU work, percentiles over many runs, memory peaks."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence

import numpy as np
import torch


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Mean, p50, p90, p99 and max of millisecond samples (linear interpolation, as numpy)."""
    if len(samples_ms) == 0:
        return {"n": 0, "mean": float("nan"), "p50": float("nan"), "p90": float("nan"), "p99": float("nan"),
                "max": float("nan")}
    samples = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    return {"n": len(samples), "mean": float(samples.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(samples.max())}


class DeviceTimer:
    """Times a block of work on `device`: CUDA events on a GPU (no host stall inside the block), a host clock on CPU.

    The events are recorded on the current stream of `device` itself (the model's GPU, not the current device), and
    `elapsed_ms` synchronizes on the end event, so read it after the work you want to overlap.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def __enter__(self) -> DeviceTimer:
        if self.cuda:
            self._start.record(torch.cuda.current_stream(self.device))
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self._end.record(torch.cuda.current_stream(self.device))
        else:
            self._t1 = time.perf_counter()

    @property
    def elapsed_ms(self) -> float:
        if self.cuda:
            self._end.synchronize()
            return self._start.elapsed_time(self._end)
        return (self._t1 - self._t0) * 1000.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_cuda_peaks(device: torch.device | str, release_cached: bool = False) -> None:
    """Start a new peak window (allocated and reserved) of the CUDA allocator of `device`; nothing on a CPU.

    `release_cached` first hands the allocator's free cached blocks back, so that the reserved peak counts only what
    the next run keeps (a benchmark point after another one)."""
    if torch.device(device).type == "cuda":
        if release_cached:
            with torch.cuda.device(device):
                torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def cuda_memory_mb(device: torch.device | str) -> dict[str, float]:
    """Allocated and reserved CUDA memory of `device` now and at peak (since `reset_cuda_peaks`), in MiB; empty on a
    CPU device."""
    if torch.device(device).type != "cuda":
        return {}
    mib = 1024.0**2
    return {
        "allocated": torch.cuda.memory_allocated(device) / mib,
        "reserved": torch.cuda.memory_reserved(device) / mib,
        "peak_allocated": torch.cuda.max_memory_allocated(device) / mib,
        "peak_reserved": torch.cuda.max_memory_reserved(device) / mib,
    }
