"""The linear scaling rule (Goyal et al., 2017): a recipe's lr is for `optim.reference_batch` images a step; a run
with another total batch (devices x data.batch_size x trainer.accumulate_grad_batches) scales it, and the warm-up
steps inversely (the same images warmed up on), unless `optim.scale_lr=false`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from detect.utils.errors import DetectError

RECIPE_KEYS = ("reference_batch", "scale_lr", "scale_warmup")  # optim keys that are not the optimizer's arguments


def world_size(trainer: DictConfig) -> int:
    """Processes of the run as Lightning counts them: trainer.devices (a count, a list of ids, "0,1", "auto" or
    -1) x trainer.num_nodes."""
    devices = trainer.devices
    if isinstance(devices, (list, tuple, ListConfig)):
        count = len(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    elif str(devices) in ("auto", "-1"):
        gpus = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        count = torch.cuda.device_count() if gpus else 1
    else:
        try:
            count = int(devices)
        except ValueError:
            count = 0
    if count < 1 or not isinstance(trainer.num_nodes, int) or trainer.num_nodes < 1:
        raise DetectError(f"trainer.devices={devices} / trainer.num_nodes={trainer.num_nodes}: give a device count "
                          ">= 1 (or a list of device ids, or auto) and num_nodes >= 1")
    return count * trainer.num_nodes


@dataclass(frozen=True)
class LrScaling:
    """What the rule does to a run: `factor` x the recipe's lr, warm-up steps / `factor` (when `scale_warmup`)."""

    devices: int
    batch_size: int
    accumulate: int
    reference_batch: int | None
    enabled: bool
    scale_warmup: bool

    @property
    def total_batch(self) -> int:
        return self.devices * self.batch_size * self.accumulate

    @property
    def factor(self) -> float:
        return self.total_batch / self.reference_batch if self.enabled and self.reference_batch else 1.0

    def warmup_steps(self, steps: int) -> int:
        """The recipe's warm-up steps for this total batch: as many images warmed up on (at least 1 step)."""
        return max(1, round(steps / self.factor)) if steps and self.scale_warmup else steps

    def line(self, lr: float, warmup_steps: int | None) -> str:
        """The header's account of the rule, e.g. "lr 0.02 x 8/16 = 0.01 for a total batch of 8 = ..."."""
        batch = (f"a total batch of {self.total_batch} = {self.devices} device(s) x {self.batch_size} images x "
                 f"{self.accumulate} accumulated")
        if not self.reference_batch:
            return f"lr {lr:g} for {batch}, not scaled (the recipe states no optim.reference_batch)"
        if not self.enabled:
            return (f"lr {lr:g} for {batch}, not scaled (optim.scale_lr=false; the recipe's lr is for "
                    f"{self.reference_batch})")
        text = f"lr {lr:g} x {self.total_batch}/{self.reference_batch} = {lr * self.factor:g} for {batch}"
        if warmup_steps is not None and self.warmup_steps(warmup_steps) != warmup_steps:
            text += f", warm-up {warmup_steps} -> {self.warmup_steps(warmup_steps)} steps"
        return text + " (linear scaling; optim.scale_lr=false turns it off)"


def lr_scaling(cfg: DictConfig) -> LrScaling:
    """The rule for a composed train config; raises DetectError naming a bad key."""
    optim = cfg.optim
    reference, enabled, warmup = optim.get("reference_batch"), optim.get("scale_lr", True), optim.get(
        "scale_warmup", False)
    if reference is not None and (not isinstance(reference, int) or isinstance(reference, bool) or reference < 1):
        raise DetectError(f"optim.reference_batch={reference} must be null or a whole number of images >= 1 (the "
                          "total batch the recipe's lr is for)")
    for key, value in (("optim.scale_lr", enabled), ("optim.scale_warmup", warmup)):
        if not isinstance(value, bool):
            raise DetectError(f"{key}={value} must be true or false")
    accumulate = cfg.trainer.get("accumulate_grad_batches", 1)
    if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
        raise DetectError(f"trainer.accumulate_grad_batches={accumulate} must be a whole number >= 1")
    return LrScaling(world_size(cfg.trainer), cfg.data.batch_size, accumulate, reference, enabled, warmup)


def scaled_configs(cfg: DictConfig, scaling: LrScaling) -> tuple[DictConfig, DictConfig]:
    """The optimizer and scheduler configs to instantiate: lr and warm-up scaled, the recipe's own keys left out."""
    optim = {key: value for key, value in OmegaConf.to_container(cfg.optim, resolve=True).items()
             if key not in RECIPE_KEYS}
    optim["lr"] = cfg.optim.lr * scaling.factor
    scheduler = OmegaConf.to_container(cfg.scheduler, resolve=True)
    if "warmup_steps" in scheduler:
        scheduler["warmup_steps"] = scaling.warmup_steps(cfg.scheduler.warmup_steps)
    return OmegaConf.create(optim), OmegaConf.create(scheduler)
