"""Optional parts of a training recipe (configs/callbacks/default.yaml): early stopping on val/AP and an EMA of the
weights. Each factory returns None when its key is null (off), and raises DetectError naming a bad key."""

from __future__ import annotations

import math
from functools import partial

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, WeightAveraging

from detect.utils.errors import DetectError


def early_stopping(patience: int | None, monitor: str = "val/AP", mode: str = "max",
                   min_delta: float = 0.0) -> EarlyStopping | None:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` evaluations in a row (the best
    checkpoint stays); None when patience is null."""
    if patience is None:
        return None
    if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
        raise DetectError(f"callbacks.early_stopping.patience={patience} must be null (off) or a number of "
                          "evaluations >= 1")
    if not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise DetectError(f"callbacks.early_stopping.min_delta={min_delta} must be >= 0")
    return EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, strict=True)


def ema_decay(updates: int, decay: float, warmup_steps: int) -> float:
    """The decay of the `updates`-th update after the first: decay x (1 - exp(-updates / warmup_steps)), as
    YOLOv5's ModelEMA, so that a young average follows the weights; `decay` itself without a warm-up."""
    return decay * (1 - math.exp(-updates / warmup_steps)) if warmup_steps else decay


def _ema_update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor,
                decay: float, warmup_steps: int) -> None:
    """AveragedModel's multi_avg_fn: averaged <- d x averaged + (1 - d) x current; integer buffers (BatchNorm's
    step count) are copied."""
    d = ema_decay(int(num_averaged), decay, warmup_steps)
    for average, value in zip(averaged, current):
        if average.is_floating_point():
            average.lerp_(value, 1 - d)
        else:
            average.copy_(value)


class EMA(WeightAveraging):
    """An exponential moving average of the weights and buffers, updated after every optimizer step (Lightning's
    WeightAveraging): validation runs on it, a checkpoint's state_dict holds it (the training weights are under
    current_model_state, and a resumed run restores both) and the model holds it after fit, for export."""

    def __init__(self, decay: float, warmup_steps: int) -> None:
        super().__init__(use_buffers=True, multi_avg_fn=partial(_ema_update, decay=decay, warmup_steps=warmup_steps))
        self.decay, self.warmup_steps = decay, warmup_steps

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._device = trainer.strategy.root_device  # where the model will train: setup runs before it moves there
        super().setup(trainer, pl_module, stage)



def recipe_lines(callbacks: list[L.Callback]) -> list[str]:
    """The header's account of the early stopping and EMA among `callbacks`."""
    lines = []
    for callback in callbacks:
        if isinstance(callback, EarlyStopping):
            lines.append(f"early stopping after {callback.patience} evaluations without a {callback.monitor} gain "
                         f"> {abs(callback.min_delta):g}; best.ckpt keeps the best")
        elif isinstance(callback, EMA):
            warmup = f", warm-up {callback.warmup_steps} steps" if callback.warmup_steps else ""
            lines.append(f"EMA of the weights (decay {callback.decay:g}{warmup}): validation, best.ckpt, last.ckpt "
                         "and exports use the EMA weights")
    return lines


def stop_lines(callbacks: list[L.Callback], step: int) -> list[str]:
    """Why an early stopping among `callbacks` ended the run at `step`, if one did."""
    return [f"early stop at step {step}: {callback.stopping_reason_message}" for callback in callbacks
            if isinstance(callback, EarlyStopping) and callback.stopping_reason_message]


def ema(decay: float | None, warmup_steps: int = 2000) -> EMA | None:
    """An EMA of the weights with `decay` in (0, 1); None when decay is null."""
    if decay is None:
        return None
    if not isinstance(decay, float) or not 0 < decay < 1:
        raise DetectError(f"callbacks.ema.decay={decay} must be null (off) or in (0, 1), e.g. 0.9998")
    if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
        raise DetectError(f"callbacks.ema.warmup_steps={warmup_steps} must be a whole number of steps >= 0")
    return EMA(decay, warmup_steps)
