"""A run that diverges stops at that step: a loss that is not finite, or one past `max_loss_factor` x its early level
(the median loss of the first `reference_steps` steps), ends training before its backward pass with one line (the
step, the loss terms, what to try). Nothing is saved after it, so the checkpoints on disk are the last good ones.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import lightning as L
import torch

from detect.utils.errors import DetectError


class DivergenceStop(L.Callback):
    """Raise a DetectError at the first step whose loss is not finite or exceeds `max_loss_factor` x the median of
    the first `reference_steps` losses (while those are being seen: of the losses so far). Every rank takes the same
    decision (one all-reduce of a flag a step), as Lightning's EarlyStopping does."""

    def __init__(self, max_loss_factor: float = 20.0, reference_steps: int = 20) -> None:
        if max_loss_factor <= 1 or reference_steps < 1:
            raise DetectError(f"callbacks.divergence: max_loss_factor={max_loss_factor} must be > 1 and "
                              f"reference_steps={reference_steps} >= 1")
        self.max_loss_factor, self.reference_steps = max_loss_factor, reference_steps
        self.early_losses: list[float] = []
        self.saved_step: int | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        early = statistics.median(self.early_losses) if self.early_losses else math.inf
        exploded = not math.isfinite(value) or value > self.max_loss_factor * early
        if not trainer.strategy.reduce_boolean_decision(exploded, all=False):
            if len(self.early_losses) < self.reference_steps:
                self.early_losses.append(value)
            return
        if not math.isfinite(value):
            why = f"the loss is {value}"
        elif value > self.max_loss_factor * early:
            why = f"the loss {value:.4g} is past {self.max_loss_factor:g} x its early level {early:.4g}"
        else:
            why = "another rank's loss diverged"
        terms = ", ".join(f"{key.removeprefix('train/')} {float(metric):.4g}"
                          for key, metric in trainer.callback_metrics.items()
                          if key.startswith("train/loss_"))
        kept = (f"the checkpoints of step {self.saved_step} are kept" if self.saved_step is not None
                else "no checkpoint was written")
        clip = trainer.gradient_clip_val
        clipping = f"a smaller trainer.gradient_clip_val (now {clip})" if clip else "trainer.gradient_clip_val=1.0"
        raise DetectError(f"training diverged at step {trainer.global_step}: {why} ({terms}); stopped, {kept}. "
                          f"Try a lower optim.lr, more scheduler.warmup_steps or {clipping}")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.saved_step = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        return {"early_losses": list(self.early_losses)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.early_losses = list(state_dict["early_losses"])
