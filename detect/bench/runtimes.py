"""The ResNet sweep's networks (`Workload`: weights, FLOPs, exports) and its runtimes outside PyTorch: ONNX Runtime,
OpenVINO (fp32, bf16, NNCF int8) and OpenCV DNN, each opened on the workload's one ONNX export and checked against
PyTorch fp32 on the point's own input before the call to time is handed out (`runtime_call`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from detect.bench.measure import count_flops
from detect.export.onnx_export import build_network, export_onnx, parse_size
from detect.export.onnx_runtime import OnnxDetector, OnnxModel
from detect.export.opencv_runtime import OpenCvModel
from detect.export.openvino_export import onnx_to_openvino, quantize_inputs
from detect.export.openvino_runtime import OpenVinoDetector, OpenVinoModel
from detect.export.parity import check_parity
from detect.utils.errors import DetectError

RUNTIMES = ("onnxruntime", "openvino", "opencv")  # the backends that run the ONNX export rather than PyTorch
DETECTOR_OUTPUTS = ("boxes", "labels", "scores")  # the exported detector's outputs, in order


def network_config(cfg: DictConfig, task: str, backbone: str, size: str) -> DictConfig:
    """The `model` config for `backbone`; the detector's resize keeps a `size` image as it is."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.name = backbone
    if task == "detector":
        height, width = parse_size(size)
        model_cfg.min_size, model_cfg.max_size = min(height, width), max(height, width)
    return model_cfg


def random_inputs(task: str, size: str, batch: int, dtype: torch.dtype, device: torch.device,
                  seed: int) -> torch.Tensor | list[torch.Tensor]:
    """Uniform 0..1 images (never zeros): a batch tensor, or a list of 3xHxW images for the detector."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, *parse_size(size), generator=generator).to(device, dtype)
    return list(images) if task == "detector" else images


class Workload:
    """The network of (task, backbone[, detector size]): its parameters, FLOPs, ONNX export and OpenVINO IRs. Every
    point gets a fresh copy of the same weights (`network`), so that no other copy sits beside it in the memory it
    measures."""

    def __init__(self, cfg: DictConfig, task: str, backbone: str, size: str, device: torch.device) -> None:
        self.cfg, self.task, self.backbone, self.size, self.device = cfg, task, backbone, size, device
        self.params = sum(p.numel() for p in self.network("cpu").parameters())
        self.onnx_path = Path(cfg.output_dir) / "onnx" / f"{task}_{backbone}_{size if task == 'detector' else 'any'}.onnx"
        self._gflops: dict[str, float] = {}
        self._runner: OnnxModel | OnnxDetector | None = None
        self._irs: dict[str, Path] = {}

    def network(self, device: torch.device | str | None = None) -> torch.nn.Module:
        """A new fp32 eager network with the workload's weights (seeded), on `device` (default: the workload's)."""
        torch.manual_seed(self.cfg.seed)
        network, _ = build_network(self.task, network_config(self.cfg, self.task, self.backbone, self.size),
                                   self.cfg.classifier_classes, self.cfg.detector_classes)
        return network.to(device or self.device)

    def gflops_per_image(self, size: str) -> float:
        if size not in self._gflops:
            images = random_inputs(self.task, size, 1, torch.float32, self.device, self.cfg.seed)
            network = self.network()
            with torch.inference_mode():
                self._gflops[size] = count_flops(lambda: network(images)) / 1e9
        return self._gflops[size]

    def onnx_file(self, size: str) -> Path:
        """The ONNX export, written once (traced at `size`; any size runs it)."""
        if not self.onnx_path.is_file():
            example = random_inputs(self.task, size, 1, torch.float32, torch.device("cpu"), self.cfg.seed)
            export_onnx(self.network("cpu"), self.task, example[0] if self.task == "detector" else example,
                        self.onnx_path, self.cfg.onnxruntime.opset, {"task": self.task})
        return self.onnx_path

    def onnx_runner(self, size: str) -> OnnxModel | OnnxDetector:
        """The export opened in ONNX Runtime on the device, once."""
        if self._runner is None:
            runner_class = OnnxDetector if self.task == "detector" else OnnxModel
            self._runner = runner_class(self.onnx_file(size), self.device, self.cfg.onnxruntime.threads,
                                        self.cfg.onnxruntime.optimization)
        return self._runner

    def ir_file(self, size: str, precision: str) -> Path:
        """The export as OpenVINO IR, converted once: f32 (fp32 and bf16 run it), or int8 quantized by NNCF on
        `int8_calibration` random images of `size` (their ranges, not those of real images: fit for timing)."""
        key = "f32" if precision != "int8" else f"int8_{size}"
        if key not in self._irs:
            stem = self.onnx_path.with_suffix("")
            if key == "f32":
                self._irs[key] = onnx_to_openvino(self.onnx_file(size), f"{stem}_f32.xml")
            else:
                batches = (random_inputs(self.task, size, 1, torch.float32, torch.device("cpu"), self.cfg.seed + 100 + i)
                           for i in range(self.cfg.int8_calibration))  # the detector's graph reads one 3xHxW image
                inputs = [(batch[0] if self.task == "detector" else batch).numpy() for batch in batches]
                self._irs[key] = quantize_inputs(self.ir_file(size, "fp32"), inputs, f"{stem}_{key}.xml")
        return self._irs[key]


def _detector_of(model: OpenCvModel) -> Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """A graph of one image -> (boxes, labels, scores) called like torchvision's FasterRCNN in eval mode."""
    return lambda images: [dict(zip(DETECTOR_OUTPUTS, model(image=image))) for image in images]


def open_runner(backend: str, precision: str, workload: Workload, size: str) -> Any:
    """The runtime `backend` on the workload's export at `precision`, called like the PyTorch network's parity
    reference expects (a detector: a list of images; otherwise `runner(images=batch)`, with `bind`)."""
    threads = workload.cfg.threads
    if backend == "onnxruntime":
        return workload.onnx_runner(size)
    if backend == "openvino":
        runner_class = OpenVinoDetector if workload.task == "detector" else OpenVinoModel
        return runner_class(workload.ir_file(size, precision), precision, threads)
    model = OpenCvModel(workload.onnx_file(size), threads)  # opencv
    return _detector_of(model) if workload.task == "detector" else model


def runtime_call(backend: str, precision: str, workload: Workload, size: str,
                 inputs: torch.Tensor | list[torch.Tensor], parity_cfg: Any) -> tuple[Callable[[], Any], str]:
    """The call to time for a runtime point and its parity summary; DetectError when it does not reproduce PyTorch
    (fp32 exactly, bf16 / int8 within their looser bounds: `check_parity`)."""
    runner = open_runner(backend, precision, workload, size)
    parity = check_parity(workload.network(), workload.task, runner, inputs, parity_cfg, precision)
    if not parity.ok:
        raise DetectError(f"{backend} {precision} parity failed: {parity.summary}")
    summary = parity.summary + (f"; calibrated on {workload.cfg.int8_calibration} random images"
                                if precision == "int8" else "")
    if workload.task == "detector":
        return lambda: runner(inputs), summary
    if backend == "onnxruntime":
        binding = runner.bind(images=inputs)
        return lambda: runner.run(binding), summary
    return runner.bind(images=inputs), summary
