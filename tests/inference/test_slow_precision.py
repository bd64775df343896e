"""A half precision the CPU has no units for (bf16 without AVX-512 BF16 / AMX, fp16 without AVX-512 FP16 / AMX FP16):
torch says so in one line at load and still runs it, OpenVINO runs fp32; on a CPU with the units, neither says a word.
The flags are faked where detect.utils.cpu reads them (its /proc/cpuinfo reader)."""

from __future__ import annotations

from pathlib import Path

import openvino as ov
import pytest
import torch
from helpers import compose_infer

from detect.export.openvino_runtime import OpenVinoDetector
from detect.inference.backends import BackendOptions, load_torch
from detect.utils import cpu

AVX2_FLAGS = "fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni"  # AVX-512, but neither BF16 nor FP16 units
WITH_UNITS = f"{AVX2_FLAGS} avx512_bf16 avx512_fp16"


def fake_cpu(monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: {"model name": "a test CPU", "flags": flags})


def load_tiny(precision: str, tmp_path: Path):
    """The tiny inference model with random weights on the CPU, at `precision`."""
    model_cfg = compose_infer(["source=unused"], tmp_path).model
    return load_torch(None, model_cfg, BackendOptions(torch.device("cpu"), precision=precision, threads=1))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_torch_half_precision_without_its_units_warns_once_and_runs(precision: str, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture,
                                                                    tmp_path: Path) -> None:
    fake_cpu(monkeypatch, AVX2_FLAGS)
    backend = load_tiny(precision, tmp_path)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and not captured.out, captured
    assert f"avx512_{precision}" in lines[0] and f"precision={precision} runs slower than fp32" in lines[0]
    assert "precision=fp32" in lines[0] and "backend=openvino" in lines[0]
    assert backend.precision == precision and backend.slow in lines[0]
    outputs = backend([torch.rand(3, 96, 128)])
    assert outputs[0]["boxes"].dtype == torch.float32 and outputs[0]["boxes"].shape[-1] == 4


def test_torch_half_precision_with_its_units_and_fp32_say_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture,
                                                                  tmp_path: Path) -> None:
    fake_cpu(monkeypatch, WITH_UNITS)
    backends = [load_tiny(precision, tmp_path) for precision in ("bf16", "fp16")]
    fake_cpu(monkeypatch, AVX2_FLAGS)
    backends.append(load_tiny("fp32", tmp_path))
    assert capsys.readouterr().err == ""
    assert [backend.slow for backend in backends] == ["", "", ""]


@pytest.mark.parametrize(("flags", "ran"), [(AVX2_FLAGS, "fp32"), (WITH_UNITS, "bf16")])
def test_openvino_bf16_follows_the_same_flags(flags: str, ran: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    fake_cpu(monkeypatch, flags)
    image = ov.opset13.parameter([1, 3, 8, 8], ov.Type.f32, name="images")
    ov.save_model(ov.Model([ov.opset13.relu(image)], [image]), tmp_path / "model.xml")
    detector = OpenVinoDetector(tmp_path / "model.xml", "bf16")
    assert detector.precision == ran
    warning = capsys.readouterr().err
    assert ("running precision=bf16 as fp32" in warning) == (ran == "fp32")
    assert ("avx512_bf16" in warning) == (ran == "fp32")
