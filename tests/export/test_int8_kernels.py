"""int8 IRs from `quantize_int8` are right on CPUs without VNNI too. There the int8 convolutions add pairs of u8 x s8
products in saturating 16-bit sums, which 8-bit weights overflow. `ONEDNN_MAX_CPU_ISA=AVX2`, set before OpenVINO
loads, makes the CPU plugin run those kernels (jit_avx2_*_I8) on any x86 CPU, so the check runs on every machine.

The probe saturates on purpose: a 1x1 convolution copies the bright input (0.78..1) into 16 channels, a 3x3 convolution
of all-ones weights sums them; its quantized activations and weights sit at the top of their ranges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

SIZE = 32
TOLERANCE = 0.05  # int8 quantization noise of the probe, as a fraction of its largest output


def probe_model(path: Path) -> None:
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter([3, SIZE, SIZE], ov.Type.f32, name="image")  # a detector's input: RGB 3xHxW in 0..1
    batch = ops.unsqueeze(image, ops.constant(np.array([0], dtype=np.int64)))
    copy = np.zeros((16, 3, 1, 1), np.float32)
    copy[np.arange(16), np.arange(16) % 3] = 1.0
    channels = ops.relu(ops.convolution(batch, ops.constant(copy), [1, 1], [0, 0], [0, 0], [1, 1]))
    total = ops.convolution(channels, ops.constant(np.ones((1, 16, 3, 3), np.float32)), [1, 1], [1, 1], [1, 1],
                            [1, 1])
    ov.save_model(ov.Model([total], [image]), str(path), compress_to_fp16=False)


def measure() -> dict:
    """Quantize the probe with the project's quantize_int8 and compare int8 with fp32 on this process's kernels."""
    import openvino as ov
    import torch

    from detect.export.openvino_export import quantize_int8
    from detect.modeling.preprocess import to_model_input

    folder = Path(tempfile.mkdtemp())
    probe_model(folder / "f32.xml")
    rng = np.random.default_rng(0)
    images = [rng.integers(200, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(8)]
    quantize_int8(folder / "f32.xml", images, folder / "int8.xml")
    core, hint = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}
    f32, int8 = (core.compile_model(str(folder / name), "CPU", hint) for name in ("f32.xml", "int8.xml"))
    kernels = sorted({op.get_rt_info()["primitiveType"].astype(str) for op in int8.get_runtime_model().get_ops()
                      if op.get_rt_info()["layerType"].astype(str) == "Convolution"})
    pixels = to_model_input(images[0], torch.device("cpu")).numpy()
    reference, quantized = f32(pixels)[0], int8(pixels)[0]
    return {"kernels": kernels, "error": float(np.abs(reference - quantized).max() / np.abs(reference).max())}


@pytest.fixture(scope="module")
def avx2() -> dict:
    """`measure` in a process whose oneDNN stops at AVX2: the int8 kernels of a CPU without VNNI."""
    env = os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_int8_is_right_on_the_kernels_of_cpus_without_vnni(avx2: dict) -> None:
    assert avx2["kernels"] and all(kernel.startswith("jit_avx2") for kernel in avx2["kernels"]), avx2
    assert avx2["error"] < TOLERANCE, f"int8 off by {avx2['error']:.0%} of the largest output on AVX2 kernels"


@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA") is not None or not {"avx512_vnni", "avx_vnni", "amx_int8"}
                    & set(Path("/proc/cpuinfo").read_text().split()), reason="no VNNI here: checked above")
def test_one_int8_ir_gives_the_same_values_on_vnni_and_on_avx2_kernels(avx2: dict) -> None:
    native = measure()
    assert not any(kernel.startswith("jit_avx2") for kernel in native["kernels"]), native
    assert abs(native["error"] - avx2["error"]) < TOLERANCE / 5, (native, avx2)


if __name__ == "__main__":
    print(json.dumps(measure()))
