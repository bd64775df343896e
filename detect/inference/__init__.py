"""Inference: the `Detector` API (detector.py) and its `Result` (result.py); backends (backends.py, onnx.py) run
the network; sources (sources.py) decode frames; sinks (sinks.py) write them; pipeline.py is infer.py's run."""

from detect.inference.detector import Detector
from detect.inference.result import Result

__all__ = ["Detector", "Result"]
