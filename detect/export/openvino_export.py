"""The exported detector as OpenVINO IR: converted from the checked ONNX graph (`ov.convert_model`), and quantized
to int8 by NNCF's post-training quantization on real images. `openvino_model` does both for any weights, once:
the IR is cached beside the weights (`<stem>_openvino/<key>/`, `<stem>_openvino_int8/<key>/`; under the cache
directory when their folder is read-only), keyed by the ONNX file it came from and the calibration, and written
atomically (a half-written IR is never read)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import openvino as ov
import torch

from detect.export.images import export_images
from detect.export.onnx_export import file_spec, onnx_model
from detect.export.openvino_runtime import FLOAT_IR_KEY, METADATA_SECTION
from detect.modeling.preprocess import to_model_input
from detect.utils.cache import cached_beside
from detect.utils.errors import DetectError

ROI_HEAD_SCOPE = ".*roi_heads.*"  # the box head's nodes in the traced graph (/roi_heads/box_head/fc6/Gemm, ...)
# Operations NNCF would also quantize but must stay in float: the gathers of box coordinates and the RoI pooler's
# level arithmetic. Calibrated on the demo's training images, one such range came out as [0, 8e-5] (from images
# without proposals) and every box collapsed to ~1e-4 px; with only convolutions and matmuls quantized, AP is kept.
FLOAT_OP_TYPES = ("Gather", "Multiply", "ROIAlign")


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path) -> Path:
    """Convert an exported detector to IR (f32 weights), with its metadata (task, classes, model) in rt_info."""
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    for prop in onnx.load(str(onnx_path), load_external_data=False).metadata_props:
        model.set_rt_info(prop.value, [METADATA_SECTION, prop.key])
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


def quantize_int8(xml_path: str | Path, images: Sequence[np.ndarray], int8_path: str | Path,
                  float_roi_head: bool = False) -> Path:
    """NNCF post-training quantization of an f32 IR on `images` (BGR, as read), the box head kept in f32 on ask."""
    if not images:
        raise DetectError("int8 quantization needs calibration images; none were given")
    inputs = [to_model_input(image, torch.device("cpu")).numpy() for image in images]
    return quantize_inputs(xml_path, inputs, int8_path, float_roi_head)


def quantize_inputs(xml_path: str | Path, inputs: Sequence[np.ndarray], int8_path: str | Path,
                    float_roi_head: bool = False) -> Path:
    """NNCF post-training quantization of an f32 IR calibrated on `inputs`, arrays as the IR reads them."""
    import nncf  # slow to import: only when int8 is asked for

    model = ov.Core().read_model(str(xml_path))
    ignored = nncf.IgnoredScope(types=list(FLOAT_OP_TYPES), patterns=[ROI_HEAD_SCOPE] if float_roi_head else [],
                                validate=False)
    # 7-bit weights in every layer: without VNNI the int8 dot products add pairs of products in saturating 16-bit
    # sums, which 8-bit weights overflow (NNCF's default fixes the first layer only)
    advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
    quantized = nncf.quantize(model, nncf.Dataset(list(inputs)), subset_size=len(inputs), ignored_scope=ignored,
                              advanced_parameters=advanced)
    int8_path = Path(int8_path)
    quantized.set_rt_info(os.path.relpath(xml_path, int8_path.parent), [METADATA_SECTION, FLOAT_IR_KEY])
    ov.save_model(quantized, str(int8_path), compress_to_fp16=False)
    return int8_path


def openvino_model(weights: str | None, model_cfg: Any, precision: str, calibration: str | None = None,
                   model_from_checkpoint: bool = True, calibration_images: int = 300,
                   float_roi_head: bool = False, opset: int = 17) -> Path:
    """The IR for `weights`: a .xml as it is; a .onnx or a checkpoint (`onnx_model`) converted and, for int8,
    quantized on `calibration` images or the checkpoint's training images, once (see the module docstring)."""
    if weights and Path(weights).suffix == ".xml":
        return Path(weights)
    onnx_path = onnx_model(weights, model_cfg, model_from_checkpoint, opset)
    source, float_spec = Path(weights), {"onnx": file_spec(onnx_path)}
    xml_path = cached_beside(source, "openvino", float_spec, "model.xml",
                             lambda tmp: onnx_to_openvino(onnx_path, tmp / "model.xml")) / "model.xml"
    if precision != "int8":
        return xml_path

    def quantize(tmp: Path) -> None:
        images = export_images(calibration, None if source.suffix == ".onnx" else source, "train", calibration_images)
        quantize_int8(xml_path, images, tmp / "model.xml", float_roi_head)

    int8_spec = float_spec | {"calibration": calibration, "images": calibration_images,
                              "float_roi_head": float_roi_head, "float_ops": FLOAT_OP_TYPES,
                              "overflow_fix": "all layers"}
    return cached_beside(source, "openvino_int8", int8_spec, "model.xml", quantize) / "model.xml"
