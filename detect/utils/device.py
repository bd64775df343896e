"""Device names and numeric precisions from configs to torch devices and dtypes, with one readable error."""

from __future__ import annotations

import torch

from detect.utils.cpu import cpu_description
from detect.utils.errors import DetectError

# Inference and benchmark precisions (training uses Lightning's own strings, detect.config.TRAINER_PRECISIONS).
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N`, or `auto`: the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DetectError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DetectError(f"device={name} but torch sees no GPU; use device=cpu")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_description()}, {torch.get_num_threads()} threads)"
