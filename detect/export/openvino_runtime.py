"""OpenVINO runs of an exported detector (`python -m detect.export format=openvino`), called like torchvision's
FasterRCNN in eval mode: the `openvino` backend of the Detector and of the benchmarks.

fp32 and bf16 run the same f32 IR with another inference-precision hint (bf16 uses AMX or AVX-512 BF16 where the CPU
has them); int8 runs an IR that NNCF quantized. Under the bf16 hint the CPU plugin keeps the graph's tail in f32: every
operation between the outputs and the last convolution or fully connected layer (its EnforceInferencePrecision
pass), which holds box decoding, clipping, score filtering and NMS; `low_precision_tail` checks a compiled model. An input size that repeats (a video's frames) gets a model compiled
for that static shape; other sizes run on one dynamic-shape model (`static_shapes=False`: always).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from detect.structures import Classes
from detect.utils.cpu import lacks_fast_units
from detect.utils.errors import DetectError, first_line

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the quantized ops; the rest stays f32
METADATA_SECTION = "detect"  # the IR's rt_info section that holds the export's metadata (task, classes, model)
FLOAT_IR_KEY = "float_ir"  # in an int8 IR's metadata: the f32 IR it was quantized from, relative to its folder
MAX_STATIC_SHAPES = 4  # input sizes that get a model of their own; others run on the dynamic-shape model


def is_quantized(model: ov.Model) -> bool:
    """Whether NNCF quantized the model (it inserts FakeQuantize operations)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def read_metadata(model: ov.Model) -> dict[str, str]:
    """The export's metadata written into the IR (see `detect.export.openvino_export`)."""
    if not model.has_rt_info([METADATA_SECTION]):
        return {}
    return {key: str(value) for key, value in model.get_rt_info([METADATA_SECTION]).value.items()}


NETWORK_LAYERS = ("Convolution", "FullyConnected", "MatMul")  # runtime layer types where the networks end
FLOAT32_TYPES = ("f32", "i64", "i32", "u8", "boolean")  # element types that are not reduced precision


def low_precision_tail(compiled: ov.CompiledModel, stop_at: tuple[str, ...] = NETWORK_LAYERS) -> list[str]:
    """The operations between the outputs and the networks' last layers (`stop_at`: box decoding, clipping, score
    filtering, NMS) that run below f32 in `compiled` (a bf16 or f16 output, or a FakeQuantize); a detector needs
    none. `stop_at=()` walks the whole graph (the networks' bf16 layers included)."""
    found, seen = [], set()
    stack = [output.get_node() for output in compiled.get_runtime_model().outputs]
    while stack:
        node = stack.pop()
        if node.get_friendly_name() in seen:
            continue
        seen.add(node.get_friendly_name())
        info = node.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in stop_at or layer == "ShapeOf":  # ShapeOf reads a shape, not values
            continue
        outputs = info["outputPrecisions"].astype(str).split(",")
        if layer == "FakeQuantize" or any(p.strip() not in FLOAT32_TYPES for p in outputs):
            found.append(f"{layer} {node.get_friendly_name()} ({', '.join(outputs)})")
        stack.extend(port.get_source_output().get_node() for port in node.inputs())
    return found


class OpenVinoDetector:
    """An OpenVINO IR of the exported detector on the CPU (see the module docstring); `classes` from the IR."""

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None,
                 static_shapes: bool = True) -> None:
        path = Path(path)
        if not path.is_file():
            raise DetectError(f"OpenVINO model {path} does not exist; write one with "
                              "`python -m detect.export format=openvino weights=<checkpoint>`")
        if precision not in PRECISION_HINTS:
            raise DetectError(f"backend=openvino runs fp32, bf16 or int8, not precision={precision}")
        self.path = path
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as error:
            raise DetectError(f"OpenVINO model {path} could not be read ({first_line(error)}); export it again "
                              "with `python -m detect.export format=openvino weights=<checkpoint>`") from None
        quantized = is_quantized(self.model)
        if (precision == "int8") != quantized:
            raise DetectError(f"{path} is {'an int8' if quantized else 'a float'} model but precision={precision}; "
                              f"use precision={'int8' if quantized else 'fp32 or bf16'} with it")
        lacks = lacks_fast_units(precision)
        if lacks:
            print(f"openvino: {lacks}; running precision={precision} as fp32", file=sys.stderr)
            precision = "fp32"
        self.precision = precision
        self.config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.static_shapes = static_shapes
        self._requests: dict[tuple[int, ...] | None, ov.InferRequest] = {}  # None: the dynamic-shape model
        self._seen: dict[tuple[int, ...], int] = {}
        self.metadata = read_metadata(self.model)
        names = self.metadata.get("class_names")
        self.classes = Classes(json.loads(names), json.loads(self.metadata["category_ids"])) if names else None

    def _request(self, shape: tuple[int, ...]) -> ov.InferRequest:
        """The infer request for an input of `shape`: the dynamic-shape model, or with `static_shapes` a model
        compiled for this shape once it has come twice (a video's frames; not a folder of images of many sizes)."""
        if shape in self._requests:
            return self._requests[shape]
        self._seen[shape] = self._seen.get(shape, 0) + 1
        static = self.static_shapes and self._seen[shape] >= 2 and len(self._requests) <= MAX_STATIC_SHAPES
        key = shape if static else None
        if key not in self._requests:
            model = self.model
            if static:
                model = self.model.clone()
                model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
            self._requests[key] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self._requests[key]

    def __call__(self, images: Iterable[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        results = []
        for image in images:
            if image.ndim != 3 or image.shape[0] != 3:
                raise DetectError(f"the OpenVINO detector takes 3xHxW RGB images, got shape {tuple(image.shape)}")
            pixels = np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy())
            request = self._request(pixels.shape)
            request.infer({0: pixels})
            boxes, labels, scores = (torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(3))
            results.append({"boxes": boxes, "labels": labels.to(torch.int64), "scores": scores})
        return results
