"""Export: networks to ONNX (`to_onnx`) and OpenVINO IR (`to_openvino`), checked against PyTorch (`parity`) on real
images (`images`); `python -m detect.export` is the command (configs/export.yaml)."""

from detect.export.parity import Parity, check_parity, detector_parity, tensor_parity
from detect.export.to_onnx import TASKS, build_network, export_detector, export_onnx, flat_outputs, parse_size

__all__ = ["TASKS", "Parity", "build_network", "check_parity", "detector_parity", "export_detector", "export_onnx",
           "flat_outputs", "parse_size", "tensor_parity"]
