"""detect: Faster R-CNN with ResNet-FPN backbones: training, evaluation, inference (`Detector`) and benchmarks.

Packages by concern, each importing only those before it in `LAYERS` (tests/test_layers.py checks every import,
those inside functions too, and that no package or module imports itself back through others). The entry points
(`python -m detect`, detect.cli, train.py, infer.py) stand above them all."""

from __future__ import annotations

from typing import Any

LAYERS = (
    "detect.utils",       # errors, cache, cpu, device, timing, plotting, drawing: nothing of detect
    "detect.structures",  # Classes, Result, COCO results: the types every layer shares
    "detect.config",      # CONFIG_DIR and compose(): the Hydra configs
    "detect.tracking",    # trackers, zones, counting, true crossings
    "detect.data",        # datasets, label formats and their checks, data modules, synthetic data, frame sources
    "detect.evaluation",  # COCO evaluation, prediction checks, MOT metrics, counting error
    "detect.analysis",    # plots and the error breakdown after an evaluation
    "detect.modeling",    # the Faster R-CNN builder, weights, checkpoints, half precision, preprocessing
    "detect.export",      # ONNX and OpenVINO: export, loading, parity
    "detect.engine",      # training: LightningModule, schedules, initial weights, preemption, sweeps
    "detect.inference",   # Detector, backends, infer.py's run, sinks
    "detect.bench",       # the user-facing reports: ResNet sweep, format table, robustness
    "detect.serve",       # the HTTP server: /predict with batching, metrics, the live view of sources
)

__all__ = ["Detector", "Result"]


def __getattr__(name: str) -> Any:
    """`from detect import Detector` without importing torch for `import detect.utils.errors` and the like."""
    if name in __all__:
        from detect import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'detect' has no attribute {name!r}")
