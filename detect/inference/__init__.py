"""Inference: the `Detector` API (detector.py) and the backends that run the network (backends.py); infer.py's run
(shards.py: many videos, in shards, merged by merge.py; pipeline.py: the sources of one run; source_run.py: one
source); what a run writes (sinks.py, result_writer.py, events.py) and reports (summary.py). Imports every layer
below it (utils ... export); only detect.bench and the entry points import it."""

from detect.inference.detector import Detector
from detect.structures import Result

__all__ = ["Detector", "Result"]
