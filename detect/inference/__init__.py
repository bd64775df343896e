"""Inference: the `Detector` API (detector.py) and its `Result` (result.py); backends (backends.py, onnx.py,
openvino.py) run the network; sources (source_list.py, sources.py, capture.py: reconnecting live sources;
multisource.py: several at once) decode frames; sinks (sinks.py) write them; pipeline.py is infer.py's run, a
source_run.py per source; zones (zones.py, counting.py, events.py, counting_gt.py) count tracks; shards.py +
merge.py: many videos, in shards. `Detector` and `Result` are imported on first use, so that `detect.export` can
import the runtimes here without importing the backends, which import `detect.export` (no import circle)."""

from __future__ import annotations

from typing import Any

__all__ = ["Detector", "Result"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from detect.inference.detector import Detector

        return Detector
    if name == "Result":
        from detect.inference.result import Result

        return Result
    raise AttributeError(f"module 'detect.inference' has no attribute {name!r}")
