"""What every backend is fed: an OpenCV frame as the RGB float tensor torchvision's detection models take."""

from __future__ import annotations

import numpy as np
import torch


def to_model_input(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 pixels -> RGB float32 3xHxW in 0..1 on `device`; only the uint8 frame crosses to the device."""
    pixels = torch.from_numpy(image).to(device, non_blocking=True)
    return pixels.permute(2, 0, 1).flip(0).float().div_(255.0)
