"""Timing and memory act on the model's GPU, not the current device: checked on a fake second GPU (no CUDA here)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from detect.bench.measure import time_calls
from detect.utils.timing import DeviceTimer, cuda_memory_mb, reset_cuda_peaks

CURRENT = torch.device("cuda:0")  # the current device of the fake: what torch uses when no device is named
MODEL = torch.device("cuda:1")


class FakeStream:
    def __init__(self, device: torch.device) -> None:
        self.device = device


class FakeEvent:
    """torch.cuda.Event's interface: record() without a stream records on the current device's stream."""

    def __init__(self, enable_timing: bool = False) -> None:
        self.stream: FakeStream | None = None

    def record(self, stream: FakeStream | None = None) -> None:
        self.stream = stream or FakeStream(CURRENT)

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.stream.device == end.stream.device, "events of two devices cannot be compared"
        return 2.5


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """torch.cuda's calls replaced by fakes that log the device each one was given."""
    calls: dict[str, list] = {"events": [], "synchronize": [], "memory": [], "reset": [], "empty_cache": []}

    def event(enable_timing: bool = False) -> FakeEvent:
        calls["events"].append(FakeEvent(enable_timing))
        return calls["events"][-1]

    def memory(name: str, mib: int):
        return lambda device=None: calls["memory"].append((name, torch.device(device or CURRENT))) or mib * 2**20

    @contextmanager
    def on_device(device: torch.device | str):
        calls["empty_cache"].append(("device", torch.device(device)))
        yield

    monkeypatch.setattr(torch.cuda, "Event", event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(torch.device(device or CURRENT)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls["synchronize"].append(device))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls["reset"].append(device))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls["empty_cache"].append("empty"))
    monkeypatch.setattr(torch.cuda, "device", on_device)
    for name, mib in (("memory_allocated", 10), ("memory_reserved", 20), ("max_memory_allocated", 30),
                      ("max_memory_reserved", 40)):
        monkeypatch.setattr(torch.cuda, name, memory(name, mib))
    return calls


def test_device_timer_records_its_events_on_the_models_gpu(fake_gpu: dict[str, list]) -> None:
    with DeviceTimer(MODEL) as timer:
        pass
    assert timer.elapsed_ms == 2.5
    assert [event.stream.device for event in fake_gpu["events"]] == [MODEL, MODEL]

    timing = time_calls(lambda: None, "cuda:1", warmup_runs=1, warmup_s=0.0, budget_s=0.0, min_runs=3,
                        unsynchronized_runs=2)
    assert timing.event_ms == [2.5] * 3 and len(timing.unsynchronized_ms) == 2
    assert {event.stream.device for event in fake_gpu["events"]} == {MODEL}
    assert fake_gpu["synchronize"] and {torch.device(d) for d in fake_gpu["synchronize"]} == {MODEL}


def test_memory_peaks_are_reset_and_read_on_the_models_gpu(fake_gpu: dict[str, list]) -> None:
    reset_cuda_peaks("cuda:1", release_cached=True)
    assert fake_gpu["empty_cache"] == [("device", MODEL), "empty"]  # the model's GPU's cache, not the current one's
    assert [torch.device(d) for d in fake_gpu["reset"]] == [MODEL]
    memory = cuda_memory_mb(MODEL)
    assert memory == {"allocated": 10, "reserved": 20, "peak_allocated": 30, "peak_reserved": 40}
    assert {device for _, device in fake_gpu["memory"]} == {MODEL} and len(fake_gpu["memory"]) == 4
    assert cuda_memory_mb("cpu") == {} and reset_cuda_peaks("cpu") is None and len(fake_gpu["reset"]) == 1
