"""Early stopping, the validation loss and the EMA of the weights: by hand on a linear model, and in a tiny run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TINY, compose_train, synthetic_overrides
from torch.utils.data import DataLoader, TensorDataset

from detect.engine.module import validation_losses
from detect.engine.recipe_callbacks import EMA
from detect.engine.training import run
from detect.modeling.model import build_model
from detect.utils.errors import DetectError


class Line(L.LightningModule):
    """y = w.x + b fitted by SGD to one sample repeated: every step's batch is the same, in any order."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self.layer(x) - y) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.tensor([[1.0, 2.0, -1.0]] * 8), torch.tensor([[3.0]] * 8)))


class Record(L.Callback):
    """The weights after every step, and a checkpoint at `save_at` (after the EMA has taken that step)."""

    def __init__(self, save_at: int, path: Path) -> None:
        self.weights: list[torch.Tensor] = []
        self.save_at, self.path = save_at, path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        self.weights.append(pl_module.layer.weight.detach().clone())
        if trainer.global_step == self.save_at:
            trainer.save_checkpoint(self.path)


def fit(steps: int, callbacks: list[L.Callback], root: Path, ckpt_path: Path | None = None) -> Line:
    module = Line()
    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=callbacks, default_root_dir=root).fit(module, ckpt_path=ckpt_path)
    return module


def test_ema_weights_equal_a_hand_computation_and_the_checkpoint_holds_them(tmp_path: Path) -> None:
    record = Record(save_at=3, path=tmp_path / "step3.ckpt")
    module = fit(3, [EMA(decay=0.5, warmup_steps=2), record], tmp_path)
    w1, w2, w3 = record.weights
    d1, d2 = 0.5 * (1 - math.exp(-1 / 2)), 0.5 * (1 - math.exp(-2 / 2))  # the warm-up after 1 and 2 updates
    ema = d2 * (d1 * w1 + (1 - d1) * w2) + (1 - d2) * w3  # the first update copies the weights
    assert not torch.allclose(ema, w3)
    torch.testing.assert_close(module.layer.weight.detach(), ema)  # after fit the model holds the EMA
    checkpoint = torch.load(tmp_path / "step3.ckpt", weights_only=True)
    torch.testing.assert_close(checkpoint["state_dict"]["layer.weight"], ema)
    torch.testing.assert_close(checkpoint["current_model_state"]["layer.weight"], w3)  # what training resumes from


def test_a_resumed_run_restores_the_ema(tmp_path: Path) -> None:
    straight = fit(5, [EMA(decay=0.8, warmup_steps=3)], tmp_path / "straight")
    fit(3, [EMA(decay=0.8, warmup_steps=3), Record(3, tmp_path / "step3.ckpt")], tmp_path / "first")
    resumed = fit(5, [EMA(decay=0.8, warmup_steps=3)], tmp_path / "resumed", ckpt_path=tmp_path / "step3.ckpt")
    torch.testing.assert_close(resumed.layer.weight, straight.layer.weight)
    torch.testing.assert_close(resumed.layer.bias, straight.layer.bias)


def test_validation_loss_leaves_batchnorm_statistics_and_the_rng_alone() -> None:
    model = build_model(compose_train(TINY).model, num_classes=4).eval()  # the demo's backbone trains its BN
    assert any(isinstance(layer, torch.nn.BatchNorm2d) for layer in model.modules())
    torch.manual_seed(1)
    images = [torch.rand(3, 96, 128), torch.rand(3, 80, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    state = {name: value.clone() for name, value in model.state_dict().items()}
    rng = torch.get_rng_state()
    first = validation_losses(model, images, targets, seed=0)
    assert set(first) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(value) and not value.requires_grad for value in first.values())
    assert torch.equal(torch.get_rng_state(), rng) and not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name  # running means, variances and counts untouched
    second = validation_losses(model, images, targets, seed=0)
    assert all(torch.equal(first[name], second[name]) for name in first)  # the same loss each evaluation


@pytest.mark.parametrize(("overrides", "message"), [
    (["callbacks.early_stopping.patience=0"], "callbacks.early_stopping.patience=0 must be null (off) or a number "
                                              "of evaluations >= 1"),
    (["callbacks.early_stopping.patience=3", "callbacks.early_stopping.min_delta=-0.1"],
     "callbacks.early_stopping.min_delta=-0.1 must be >= 0"),
    (["callbacks.ema.decay=1.0"], "callbacks.ema.decay=1.0 must be null (off) or in (0, 1)"),
    (["callbacks.ema.decay=0"], "callbacks.ema.decay=0 must be null (off) or in (0, 1)"),
    (["callbacks.ema.decay=0.9", "callbacks.ema.warmup_steps=-5"],
     "callbacks.ema.warmup_steps=-5 must be a whole number of steps >= 0"),
])
def test_bad_values_fail_before_any_work(overrides: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(DetectError, match="^" + message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        run(compose_train(overrides, tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing written: no data, no checkpoint


@pytest.mark.slow
def test_early_stop_after_patience_with_val_loss_and_ema(synthetic_cache: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """min_delta 1: val/AP can never improve, so the run stops at the 1 + patience-th evaluation."""
    run(compose_train([*TINY, *synthetic_overrides(synthetic_cache), "trainer.max_steps=8",
                       "trainer.val_check_interval=1", "callbacks.early_stopping.patience=2",
                       "callbacks.early_stopping.min_delta=1.0", "callbacks.ema.decay=0.5"], tmp_path))
    out = capsys.readouterr().out
    assert "early stopping after 2 evaluations without a val/AP gain > 1; best.ckpt keeps the best" in out
    assert "EMA of the weights (decay 0.5, warm-up 2000 steps)" in out
    assert "early stop at step 3: Monitored metric val/AP did not improve in the last 2 records" in out
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/AP")]
    assert [int(row["step"]) for row in rows] == [0, 1, 2]  # evaluations after steps 1, 2, 3 (logged 0-based)
    assert all(float(row["val/loss"]) > 0 for row in rows)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert set(last["state_dict"]) == set(last["current_model_state"])  # the EMA under the detector's own keys
    assert any(not torch.equal(value, last["current_model_state"][name]) for name, value in last["state_dict"].items())
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    best_ap = max(float(row["val/AP"]) for row in rows)
    assert best["global_step"] in [int(row["step"]) + 1 for row in rows if float(row["val/AP"]) == best_ap]
