"""Where the Hydra configs are, and checks of a composed config that run before any work, each failing with one
message naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from detect.errors import DetectError, check_choice
from detect.evaluation import BACKENDS
from detect.model import BACKBONES, NORMS, SYNC_BN_NEEDS_GPUS

# The Hydra configs: inside the package when it is installed from a wheel, beside it in a checkout.
CONFIG_DIR = next(path for path in (Path(__file__).parent / "configs", Path(__file__).parents[1] / "configs")
                  if path.is_dir())
MODES = ("fit", "evaluate")
# ${first:a,b}: a unless it is null or empty, else b (train.yaml: resume=<run> runs in that run's folder)
OmegaConf.register_new_resolver("first", lambda value, default: value or default, replace=True)
TRAINER_PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")  # Lightning's


def instantiate_node(node: DictConfig) -> Any:
    """Hydra's instantiate, with our own DetectError raised as itself rather than wrapped in Hydra's."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, DetectError):
            raise error.__cause__ from None
        raise


def check_model_config(model: DictConfig) -> None:
    """Backbone name and norm known, sizes and thresholds in range."""
    check_choice("model.backbone.name", model.backbone.name, BACKBONES)
    check_choice("model.backbone.norm", model.backbone.norm, tuple(NORMS))
    min_sizes = model.min_size if OmegaConf.is_list(model.min_size) else [model.min_size]
    if min(min_sizes) <= 0 or model.max_size < max(min_sizes):
        raise DetectError(f"model.min_size={model.min_size} / model.max_size={model.max_size}: need 0 < min_size "
                          "<= max_size")
    if not 0.0 <= model.roi.score_thresh < 1.0:
        raise DetectError(f"model.roi.score_thresh={model.roi.score_thresh} must be in [0, 1)")


def check_train_config(cfg: DictConfig) -> None:
    """Everything train.py can check without reading data: unset keys, names, ranges, files named in the config."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise DetectError(f"{', '.join(missing)} must be set (they are ??? in the config), e.g. {missing[0]}=...")
    check_choice("mode", cfg.mode, MODES)
    check_model_config(cfg.model)
    if cfg.optim.lr <= 0:
        raise DetectError(f"optim.lr={cfg.optim.lr} must be > 0")
    if cfg.optim.get("weight_decay", 0) < 0:
        raise DetectError(f"optim.weight_decay={cfg.optim.weight_decay} must be >= 0")
    if list(cfg.scheduler.get("milestones", [])) != sorted(cfg.scheduler.get("milestones", [])):
        raise DetectError(f"scheduler.milestones={list(cfg.scheduler.milestones)} must be increasing")
    check_choice("trainer.precision", str(cfg.trainer.precision), TRAINER_PRECISIONS)
    on_cpu = cfg.trainer.accelerator == "cpu" or (cfg.trainer.accelerator == "auto" and not torch.cuda.is_available())
    if cfg.mode == "fit" and cfg.model.backbone.norm == "sync_bn" and on_cpu:
        raise DetectError(f"{SYNC_BN_NEEDS_GPUS}, and this run trains on the CPU (trainer.accelerator="
                          f"{cfg.trainer.accelerator}); use model.backbone.norm=bn")
    check_choice("evaluation.backend", cfg.evaluation.backend, BACKENDS)
    if cfg.mode == "evaluate" and not cfg.ckpt_path:
        raise DetectError("mode=evaluate needs ckpt_path=<a checkpoint of train.py or a detector state_dict>")
    if cfg.resume and (cfg.ckpt_path or cfg.mode != "fit"):
        raise DetectError(f"resume={cfg.resume} continues a training run: use it alone (no ckpt_path, mode=fit)")
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise DetectError(f"ckpt_path={cfg.ckpt_path} does not exist; pass a .ckpt file (e.g. .../checkpoints/last.ckpt)")


def check_group_overrides(overrides: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """`group=option` command-line overrides whose option has no configs/<group>/<option>.yaml, as one line (Hydra
    would answer with a page): e.g. tracker=nonsense, model/backbone=resnet42."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        group = config_dir / key.replace(".", "/")
        # not a group, a sweep function such as choice(...), or hydra/*: Hydra's plugins add options of their own
        if not group.is_dir() or "(" in value or key.startswith("hydra/"):
            continue
        for option in value.split(","):  # a multirun sweep: a,b,c
            if option and option != "null" and not (group / f"{option}.yaml").is_file():
                check_choice(key, option, sorted(path.stem for path in group.glob("*.yaml")))


def plain_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (interpolations resolved against its root) or a mapping, as plain Python types."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
