"""Automatic mixed precision in training: bf16-mixed really trains on the CPU, and 16-mixed on a GPU gets
Lightning's gradient scaler (checked without a GPU: the plugin Lightning builds from the config)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TINY, compose_train, synthetic_overrides
from hydra.utils import instantiate
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.plugins.precision import MixedPrecision

from detect.engine.training import run


class ActivationDtypes(L.Callback):
    """The dtype of the backbone's output in every training step."""

    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.model.backbone.body.register_forward_hook(  # training steps only: val/loss runs in train mode too
            lambda module, args, output: self.dtypes.append(output["3"].dtype) if trainer.training else None)


@pytest.mark.slow
def test_bf16_mixed_training_on_the_cpu_has_finite_losses_and_keeps_the_ap(trained_run: Path, synthetic_cache: Path,
                                                                         tmp_path: Path) -> None:
    fp32_ap = json.loads((trained_run / "eval" / "metrics.json").read_text())["stats"]["AP"]
    dtypes = ActivationDtypes()
    cfg = compose_train([*TINY, *synthetic_overrides(synthetic_cache, num_train=64, num_val=16), "optim=adamw",
                         "optim.lr=0.0002", "optim.weight_decay=0", "scheduler.warmup_steps=1",
                         f"model.weights={trained_run / 'checkpoints' / 'best.ckpt'}", "trainer.precision=bf16-mixed",
                         "trainer.max_steps=4", "trainer.val_check_interval=4"], tmp_path)
    stats = run(cfg, callbacks=[dtypes])
    assert dtypes.dtypes == [torch.bfloat16] * 4  # the backbone ran in bf16 in each step
    with open(tmp_path / "csv" / "metrics.csv") as file:
        losses = [float(row["train/loss"]) for row in csv.DictReader(file) if row.get("train/loss")]
    assert len(losses) == 4 and all(math.isfinite(loss) and 0 < loss < 5 for loss in losses), losses
    # evaluated under bf16 autocast: boxes decoded in bf16 (the bug of issue 16) score near 0; the fixture detects
    assert fp32_ap > 0.02 and stats["AP"] > 0.5 * fp32_ap, (stats["AP"], fp32_ap)


def test_gpu_amp_config_gets_lightnings_gradient_scaler_on_cuda(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))  # a GPU, as Lightning sees one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # GradScaler disables itself without CUDA
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg = compose_train(["trainer=gpu_amp", "trainer.gradient_clip_val=5.0"], tmp_path)
    trainer = instantiate(cfg.trainer, logger=False)
    plugin = trainer.precision_plugin
    assert isinstance(plugin, MixedPrecision) and (plugin.precision, plugin.device) == ("16-mixed", "cuda")
    assert isinstance(plugin.scaler, torch.amp.GradScaler) and plugin.scaler.is_enabled()
    assert plugin.scaler._device == "cuda" and plugin.scaler.get_scale() == 2.0**16
    assert trainer.strategy.root_device == torch.device("cuda", 0) and trainer.gradient_clip_val == 5.0
