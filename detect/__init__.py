"""detect: Faster R-CNN with ResNet-FPN backbones: training, evaluation, inference (`Detector`) and benchmarks."""

from __future__ import annotations

from typing import Any

__all__ = ["Detector", "Result"]


def __getattr__(name: str) -> Any:
    """`from detect import Detector` without importing torch for `import detect.errors` and the like."""
    if name in __all__:
        from detect import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'detect' has no attribute {name!r}")
