"""Training runs that start from weights or stop on their own: a resumed run never reads model.weights again, a
diverged run stops at that step keeping the last good checkpoint, and fine-tuning a trained checkpoint through
train.py on a task with other classes beats training it from scratch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import TINY, compose_train, synthetic_overrides, write_checkpoint
from test_train import train_py

from detect.engine.training import run
from detect.structures import Classes
from detect.utils.errors import DetectError

pytestmark = pytest.mark.slow
NO_VALIDATION = ["trainer.val_check_interval=1000", "callbacks.preemption_checkpoint.every_n_steps=2"]


def test_resume_never_reads_model_weights_again(synthetic_cache: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    model_cfg = compose_train(TINY).model
    write_checkpoint(tmp_path / "start.ckpt", model_cfg, Classes(["square", "disc", "triangle"], [1, 2, 4]))
    base = [*TINY, *synthetic_overrides(synthetic_cache, num_train=8, num_val=4), *NO_VALIDATION,
            f"model.weights={tmp_path / 'start.ckpt'}"]
    run(compose_train([*base, "trainer.max_steps=2"], tmp_path / "run"))
    (tmp_path / "start.ckpt").unlink()  # moved, or on a node that cannot see it
    capsys.readouterr()
    run(compose_train([*base, "trainer.max_steps=3", f"resume={tmp_path / 'run'}"], tmp_path / "run"))
    assert "model.weights is not read" in capsys.readouterr().out
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 and last["detect"]["model"]["weights"] == str(tmp_path / "start.ckpt")


@pytest.mark.parametrize(("clip", "gamma", "why"), [("null", "1e9", "the loss is nan"),
                                                    ("5.0", "1e5", "is past 20 x its early level")])
def test_a_diverged_run_stops_at_that_step_and_keeps_the_last_good_checkpoint(
        clip: str, gamma: str, why: str, synthetic_cache: Path, tmp_path: Path) -> None:
    # lr 0.04 for steps 0 and 1 (last.ckpt at step 2), then x gamma: the loss of step 3 explodes
    cfg = compose_train([*TINY, *synthetic_overrides(synthetic_cache, num_train=8, num_val=4), *NO_VALIDATION,
                         "trainer.max_steps=8", "scheduler.warmup_steps=1", "scheduler.milestones=[2]",
                         f"scheduler.gamma={gamma}", f"trainer.gradient_clip_val={clip}"], tmp_path)
    with pytest.raises(DetectError) as error:
        run(cfg)
    message = str(error.value)
    assert message.startswith("training diverged at step 3: ") and why in message and "\n" not in message
    assert "loss_classifier" in message and "the checkpoints of step 2 are kept" in message
    assert "Try a lower optim.lr" in message
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and all(v.isfinite().all() for v in last["state_dict"].values()
                                            if v.is_floating_point())
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()


def test_fine_tuning_a_checkpoint_on_other_classes_beats_training_from_scratch(
        trained_run: Path, synthetic_cache: Path, tmp_path: Path) -> None:
    """trained_run (3 demo shapes) fine-tuned through train.py to 2 new shapes, against the same model from scratch:
    same data, steps, optimizer and seed."""
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    task = [*TINY, *synthetic_overrides(synthetic_cache, num_train=32, num_val=16), "data.shapes=[ring,cross]",
            "optim=adamw", "optim.lr=0.001", "optim.weight_decay=0", "scheduler.warmup_steps=5",
            "trainer.max_steps=15", "trainer.val_check_interval=15"]
    result = train_py([*task, f"model.weights={checkpoint}"], tmp_path / "fine_tuned")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"weights: the whole detector from {checkpoint}" in result.stdout
    assert ("weights: box predictor initialised (3 -> 2 classes, none of the same name) (weights: square, disc, "
            "triangle; this run: ring, cross)") in result.stdout
    stats = {"fine-tuned": json.loads((tmp_path / "fine_tuned" / "eval" / "metrics.json").read_text())["stats"],
             "scratch": run(compose_train([*task, "model.weights=null"], tmp_path / "scratch"))}
    assert all(math.isfinite(s["AP50"]) for s in stats.values())
    assert stats["fine-tuned"]["AP50"] > stats["scratch"]["AP50"] + 0.05, stats
