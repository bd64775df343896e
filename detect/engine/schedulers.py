"""Learning-rate schedules with a linear per-step warm-up (configs/scheduler targets these)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_multistep(optimizer: torch.optim.Optimizer, warmup_steps: int, warmup_factor: float,
                     milestones: Sequence[int], gamma: float) -> LambdaLR:
    """Linear warmup from `warmup_factor` x lr, then x `gamma` at each milestone step (Detectron2's WarmupMultiStepLR)."""
    def factor(step: int) -> float:
        warmup = warmup_factor + (1 - warmup_factor) * step / warmup_steps if step < warmup_steps else 1.0
        return warmup * gamma ** sum(step >= m for m in milestones)

    return LambdaLR(optimizer, factor)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, warmup_factor: float, total_steps: int,
                  final_factor: float) -> LambdaLR:
    """Linear warmup, then a cosine from 1 down to `final_factor` x lr at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_factor + (1 - warmup_factor) * step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
