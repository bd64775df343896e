"""ONNX Runtime sessions on the CPU: a network that reads torch tensors in place, and an exported detector called like
torchvision's FasterRCNN in eval mode (the `onnxruntime` backend of the Detector and of the benchmarks).

The CPU wheel is the one declared, so a GPU is refused in one line rather than half supported: running on CUDA
would need onnxruntime-gpu (another package under the same import name) and a synchronised input; on a GPU,
backend=torch runs fp16 / bf16 and compile."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from detect.structures import Classes
from detect.utils.errors import DetectError, first_line

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
NUMPY_TYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}


class OnnxModel:
    """An ONNX Runtime session on the CPU that reads torch tensors in place.

    `bind` once and `run` many times to time only the network; calling the model binds, runs and returns the
    outputs as CPU tensors.
    """

    def __init__(self, path: str | Path, device: torch.device | str = "cpu", threads: int | None = None,
                 optimization: str = "all") -> None:
        path, self.device = Path(path), torch.device(device)
        if not path.is_file():
            raise DetectError(f"ONNX model {path} does not exist; write one with `python -m detect.export`")
        if optimization not in OPTIMIZATION_LEVELS:
            raise DetectError(f"onnxruntime.optimization={optimization!r} is not a level; "
                              f"choose one of {', '.join(OPTIMIZATION_LEVELS)}")
        if self.device.type != "cpu":
            raise DetectError(f"ONNX Runtime runs on the CPU here (the onnxruntime CPU wheel), not "
                              f"device={self.device}; use device=cpu, or backend=torch on the GPU")
        options = ort.SessionOptions()
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own Fail/InvalidGraph/... types for a file that is no model
            raise DetectError(f"ONNX model {path} could not be loaded ({first_line(error)}); "
                              "export it again with `python -m detect.export weights=<checkpoint>`") from error
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def bind(self, **inputs: torch.Tensor) -> ort.IOBinding:
        """Bind CPU `inputs` (kept alive by the caller) by pointer, and the outputs."""
        binding = self.session.io_binding()
        for name, tensor in inputs.items():
            if not tensor.is_contiguous() or tensor.dtype not in NUMPY_TYPES:
                raise DetectError(f"ONNX input {name!r} must be a contiguous float32/float16 tensor, "
                                  f"got {tensor.dtype}")
            binding.bind_input(name, "cpu", 0, NUMPY_TYPES[tensor.dtype], tuple(tensor.shape), tensor.data_ptr())
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cpu", 0)
        return binding

    def run(self, binding: ort.IOBinding) -> None:
        self.session.run_with_iobinding(binding)

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        inputs = {name: tensor.to(self.device).contiguous() for name, tensor in inputs.items()}
        binding = self.bind(**inputs)
        self.run(binding)
        return [torch.from_numpy(array) for array in binding.copy_outputs_to_cpu()]


class OnnxDetector:
    """An exported Faster R-CNN called like torchvision's FasterRCNN in eval mode.

    `detector(images)` takes float32 RGB 3xHxW tensors in 0..1 of any size and returns, per image, a dict of
    `boxes` (xyxy, input pixels), `labels` and `scores` on `device`. `classes` are those written at export.
    The graph takes one image, so the results are PyTorch's for one image per call (PyTorch pads a list of images
    of different sizes into one batch, which moves its results slightly).
    """

    def __init__(self, path: str | Path, device: torch.device | str = "cpu", threads: int | None = None,
                 optimization: str = "all") -> None:
        self.model = OnnxModel(path, device, threads, optimization)
        self.device = self.model.device
        meta = self.model.metadata
        if meta.get("task", "detector") != "detector":
            raise DetectError(f"ONNX model {path} is a {meta['task']}, not a detector; export one with "
                              "`python -m detect.export export.task=detector`")
        self.classes = (Classes(json.loads(meta["class_names"]), json.loads(meta["category_ids"]))
                        if "class_names" in meta else None)

    def __call__(self, images: Iterable[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        results = []
        for image in images:
            if image.ndim != 3 or image.shape[0] != 3:
                raise DetectError(f"OnnxDetector takes 3xHxW RGB images, got a tensor of shape {tuple(image.shape)}")
            boxes, labels, scores = self.model(image=image.to(torch.float32))
            results.append({"boxes": boxes.to(self.device), "labels": labels.to(self.device),
                            "scores": scores.to(self.device)})
        return results
