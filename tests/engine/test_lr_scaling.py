"""The linear scaling rule on composed configs: lr and warm-up follow devices x batch x accumulation; bad keys."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_train
from hydra.utils import instantiate

from detect.engine.lr_scaling import lr_scaling, scaled_configs
from detect.engine.training import check_train_config
from detect.utils.errors import DetectError

R50 = ["experiment=coco_r50_1x", "data.root=/data/coco", "trainer.accelerator=cpu"]  # SGD lr 0.02 for 16 images


@pytest.mark.parametrize(("overrides", "total", "lr", "warmup"), [
    ([], 16, 0.02, 1000),  # the recipe's own batch: 8 devices x 2 images
    (["trainer.devices=1", "data.batch_size=2"], 2, 0.0025, 8000),
    (["trainer.devices=2", "data.batch_size=4", "trainer.accumulate_grad_batches=2"], 16, 0.02, 1000),
    (["trainer.devices=[0,1,2,3]", "trainer.num_nodes=2", "data.batch_size=4"], 32, 0.04, 500),
    (["trainer.devices=1", "data.batch_size=2", "optim.scale_lr=false"], 2, 0.02, 1000),
    (["trainer.devices=1", "data.batch_size=2", "optim.scale_warmup=false"], 2, 0.0025, 1000),
])
def test_lr_and_warmup_follow_the_total_batch(overrides: list[str], total: int, lr: float, warmup: int) -> None:
    cfg = compose_train([*R50, *overrides])
    check_train_config(cfg)
    scaling = lr_scaling(cfg)
    assert scaling.total_batch == total
    optim, scheduler = scaled_configs(cfg, scaling)
    assert optim.lr == pytest.approx(lr) and scheduler.warmup_steps == warmup
    assert cfg.optim.lr == 0.02 and cfg.scheduler.warmup_steps == 1000  # the recipe itself is left as written
    # the recipe's own keys do not reach the optimizer: it builds, with the scaled lr
    optimizer = instantiate(optim)([torch.nn.Parameter(torch.zeros(1))])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lr)


def test_header_line_states_the_rule() -> None:
    scaling = lr_scaling(compose_train([*R50, "trainer.devices=1", "trainer.accumulate_grad_batches=4"]))
    line = scaling.line(0.02, 1000)
    assert line.startswith("lr 0.02 x 8/16 = 0.01 for a total batch of 8 = 1 device(s) x 2 images x 4 accumulated")
    assert "warm-up 1000 -> 2000 steps" in line and "optim.scale_lr=false" in line
    off = lr_scaling(compose_train([*R50, "trainer.devices=1", "optim.scale_lr=false"])).line(0.02, 1000)
    assert "not scaled (optim.scale_lr=false; the recipe's lr is for 16)" in off and "warm-up" not in off


def test_the_demo_trains_at_its_own_lr() -> None:
    cfg = compose_train(["trainer.accelerator=cpu"])
    assert lr_scaling(cfg).factor == 1.0 and scaled_configs(cfg, lr_scaling(cfg))[0].lr == cfg.optim.lr == 0.04


@pytest.mark.parametrize(("override", "message"), [
    ("optim.reference_batch=0", "optim.reference_batch=0 must be null or a whole number of images >= 1"),
    ("optim.reference_batch=2.5", "optim.reference_batch=2.5 must be null"),
    ("optim.scale_lr=maybe", "optim.scale_lr=maybe must be true or false"),
    ("optim.scale_warmup=1", "optim.scale_warmup=1 must be true or false"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0 must be a whole number >= 1"),
    ("trainer.devices=0", "trainer.devices=0 / trainer.num_nodes=1: give a device count >= 1"),
    ("trainer.devices=many", "trainer.devices=many / trainer.num_nodes=1"),
])
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(DetectError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        check_train_config(compose_train([*R50, override]))
