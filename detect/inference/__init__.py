"""Inference: the `Detector` API (detector.py) and its `Result` (result.py); backends (backends.py, onnx.py) run
the network; sources (source_list.py, sources.py, capture.py: reconnecting live sources; multisource.py: several
at once) decode frames; sinks (sinks.py) write them; pipeline.py is infer.py's run, a source_run.py per source."""

from detect.inference.detector import Detector
from detect.inference.result import Result

__all__ = ["Detector", "Result"]
