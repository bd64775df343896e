"""What `python -m detect.export` runs (detect/export/__main__.py checks the command line first)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from detect.export.images import export_images
from detect.export.onnx_export import TASKS, build_network, export_detector, export_onnx, parse_size
from detect.export.onnx_runtime import OnnxDetector, OnnxModel
from detect.export.openvino_export import onnx_to_openvino, quantize_int8
from detect.export.openvino_runtime import OpenVinoDetector
from detect.export.parity import Parity, check_parity
from detect.modeling.preprocess import to_model_input
from detect.utils.errors import DetectError

FORMATS = ("onnx", "openvino")


def output_paths(cfg: DictConfig) -> tuple[Path, Path, Path]:
    """(ONNX file, f32 IR, the file written last) of this export: `path`, or beside the weights (<stem>.onnx,
    <stem>_openvino/model.xml and model_int8.xml), or under outputs/export/ for random weights."""
    if cfg.path is not None:
        path = Path(cfg.path)
        if cfg.format == "onnx":
            return path, path.with_suffix(".xml"), path
        f32 = path if cfg.precision == "fp32" else path.with_name(f"{path.stem}_fp32.xml")
        return path.with_suffix(".onnx"), f32, path
    base = Path(cfg.weights) if cfg.weights else Path("outputs/export") / f"{cfg.task}_{cfg.model.backbone.name}.pt"
    folder = base.with_name(f"{base.stem}_openvino")
    final = {"onnx": base.with_suffix(".onnx"), "openvino": folder / f"model{'_int8' * (cfg.precision == 'int8')}.xml"}
    return base.with_suffix(".onnx"), folder / "model.xml", final[cfg.format]


def export_model(cfg: DictConfig) -> tuple[Path, list[tuple[str, Parity]]]:
    """Export the configured network and compare each runtime with PyTorch: (file written, (runtime, parity)s)."""
    if cfg.task not in TASKS or cfg.format not in FORMATS or cfg.precision not in ("fp32", "int8"):
        raise DetectError(f"task={cfg.task} format={cfg.format} precision={cfg.precision}: choose task from "
                          f"{', '.join(TASKS)}, format from {', '.join(FORMATS)}, precision fp32 or int8")
    if cfg.task != "detector" and (cfg.format != "onnx" or cfg.precision != "fp32"):
        raise DetectError(f"task={cfg.task} exports to ONNX in fp32 only; format=openvino exports the detector")
    if cfg.precision == "int8" and cfg.format != "openvino":
        raise DetectError("precision=int8 is an OpenVINO export: add format=openvino")
    torch.manual_seed(cfg.seed)
    onnx_path, f32_path, final_path = output_paths(cfg)
    height, width = parse_size(cfg.size)
    if cfg.task != "detector":
        network, _ = build_network(cfg.task, cfg.model, cfg.classifier_classes)
        export_onnx(network, cfg.task, torch.rand(2, 3, height, width), onnx_path, cfg.onnxruntime.opset,
                    {"task": cfg.task, "backbone": cfg.model.backbone.name})
        runner = OnnxModel(onnx_path, "cpu", cfg.threads, cfg.onnxruntime.optimization)
        return onnx_path, [(f"ONNX Runtime at {size[0]}x{size[1]}", check_parity(
            network, cfg.task, runner, torch.rand(2, 3, *size), cfg.parity)) for size in ((height, width), (width, height))]

    images = export_images(cfg.parity_images, cfg.weights, "val", cfg.parity_count)  # first: a bad source fails fast
    inputs = [to_model_input(image, torch.device("cpu")) for image in images]
    _, network, _ = export_detector(cfg.weights, cfg.model, onnx_path, cfg.onnxruntime.opset,
                                    cfg.model_from_checkpoint, (height, width),
                                    cfg.detector_classes)
    runners = {"ONNX Runtime": OnnxDetector(onnx_path, "cpu", cfg.threads, cfg.onnxruntime.optimization)}
    written = onnx_path
    if cfg.format == "openvino":
        written = onnx_to_openvino(onnx_path, f32_path)
        runners["OpenVINO f32"] = OpenVinoDetector(written, "fp32", cfg.threads)
        if cfg.precision == "int8":
            calibration = export_images(cfg.calibration, cfg.weights, "train", cfg.calibration_images)
            written = quantize_int8(written, calibration, final_path, cfg.float_roi_head)
    return written, [(name, check_parity(network, "detector", runner, inputs, cfg.parity))
                     for name, runner in runners.items()]


def run(cfg: DictConfig) -> None:
    path, results = export_model(cfg)
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    print(f"wrote {path} ({size_mb:.0f} MiB, {cfg.format} {cfg.precision}, dynamic image size)")
    for name, parity in results:
        print(f"parity with PyTorch, {name}: {'ok' if parity.ok else 'FAILED'}: {parity.summary}")
    if cfg.precision == "int8":
        print("int8 is not expected to match PyTorch box for box: `python -m detect.bench formats "
              "weights=...` measures its AP against torch fp32")
    if not all(parity.ok for _, parity in results):
        raise DetectError("the exported model does not reproduce PyTorch within the parity limits (see above)")
