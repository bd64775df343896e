"""OpenCV's DNN module on an exported ONNX graph (`cv2.dnn.readNetFromONNX`), on the CPU in fp32, called like
`OnnxModel`: a runtime of the ResNet sweep. Its ONNX importer covers the classifier and the backbone; where it cannot
read or run a graph (the detector's NMS and RoIAlign), one DetectError says what it stopped at."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from detect.utils.errors import DetectError


def _reason(error: cv2.error) -> str:
    """OpenCV's own words from a cv2.error (its `> ...` lines, else its message's last line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = [line.lstrip("> ").strip() for line in lines if line.startswith(">")]
    return " ".join(said) if said else lines[-1]


class OpenCvModel:
    """An ONNX graph in OpenCV DNN (its own CPU backend); `threads` sets OpenCV's thread count (process-wide)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise DetectError(f"ONNX model {path} does not exist; write one with `python -m detect.export`")
        if threads:
            cv2.setNumThreads(int(threads))
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as error:
            raise DetectError(f"OpenCV {cv2.__version__} DNN cannot read {path.name}: {_reason(error)}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)  # the CPU is its default target
        self.path, self.outputs = path, list(self.net.getUnconnectedOutLayersNames())

    def bind(self, **inputs: torch.Tensor) -> Callable[[], list[np.ndarray]]:
        """Set `inputs` (float32, NCHW or the graph's own layout) once; the call runs the network on them."""
        for name, tensor in inputs.items():
            self.net.setInput(np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy()), name)
        return self._forward

    def _forward(self) -> list[np.ndarray]:
        try:
            return self.net.forward(self.outputs)
        except cv2.error as error:
            raise DetectError(f"OpenCV {cv2.__version__} DNN cannot run {self.path.name}: {_reason(error)}") from None

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(np.array(output)) for output in self.bind(**inputs)()]
