"""Real training runs: train.py through Hydra, resume, evaluate-only, every backbone, bad input, 2-process DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from helpers import TINY, compose_train, off_slurm_environment, synthetic_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from detect.engine.training import run
from detect.modeling.model import BACKBONES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def train_py(args: list[str], run_dir: Path, timeout: int = 600,
             environment: Mapping[str, str] = os.environ) -> subprocess.CompletedProcess:
    env = {**environment, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def logged_steps(output_dir: Path, column: str = "train/loss") -> list[int]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get(column)]


def test_train_py_trains_evaluates_and_checkpoints_with_its_own_header(synthetic_cache: Path, tmp_path: Path) -> None:
    """The demo as a user runs it on a machine with SLURM installed, outside a job: it trains, evaluates once, saves
    both checkpoints and the plots, and prints the run's header lines and none of Lightning's LitLogger tip, srun
    hint, model summary with 0 FLOPs, or torch's LeafSpec warning."""
    (tmp_path / "bin").mkdir()
    run_dir = tmp_path / "run"
    result = train_py([*TINY, *synthetic_overrides(synthetic_cache), "trainer.max_steps=3",
                       "trainer.val_check_interval=3", "plots=true"], run_dir,
                      environment=off_slurm_environment(tmp_path / "bin"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for noise in ("litlogger", "Tip:", "`srun` command", "FLOPs", "Total params", "LeafSpec"):
        assert noise not in output, output[:3000]
    assert "lr 0.04 x 4/4 = 0.04 for a total batch of 4 = 1 device(s) x 4 images x 1 accumulated" in result.stdout
    assert result.stdout.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") == 1
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert logged_steps(run_dir) == [0, 1, 2]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 8 and set(metrics["stats"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"}
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert checkpoint["detect"]["category_ids"] == [1, 2, 4]
    assert checkpoint["detect"]["class_names"] == ["square", "disc", "triangle"]
    millions = sum(tensor.numel() for name, tensor in checkpoint["state_dict"].items()
                   if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))) / 1e6
    for line in ("mode fit; output", f"resnet18-FPN (32 ch, norm bn), {millions:.1f} M parameters ({millions:.1f} M "
                 "trainable)", "train 16 images", "steps 3 x 4 images per device", "built-in demo"):
        assert line in result.stdout, result.stdout[:3000]
    plots = {path.name for path in (run_dir / "plots").iterdir()}
    assert {"results.png", "pr_curves.png", "f1_curve.png", "confusion_matrix.png", "worst_images.png"} <= plots
    assert 0.0 <= metrics["best_f1_threshold"] <= 1.0 and Path(metrics["val_json"]).is_file()


def test_resume_continues_at_the_saved_step_and_evaluate_writes_results(synthetic_cache: Path,
                                                                        tmp_path: Path) -> None:
    base = [*TINY, *synthetic_overrides(synthetic_cache), "trainer.val_check_interval=2"]
    run(compose_train([*base, "trainer.max_steps=2", "logger=tensorboard", "plots=true"], tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    events = EventAccumulator(str(tmp_path / "first" / "tensorboard"))
    events.Reload()
    assert {"plots/pr_curves", "plots/confusion_matrix", "plots/worst_images"} <= set(events.Tags()["images"])
    assert "val/AP" in events.Tags()["scalars"]
    assert (tmp_path / "first" / "plots" / "results.png").is_file()  # drawn from TensorBoard's files: no csv
    assert "plots/errors" in events.Tags()["images"]

    run(compose_train([*base, "trainer.max_steps=4", f"ckpt_path={last}"], tmp_path / "resumed"))
    assert logged_steps(tmp_path / "resumed") == [2, 3]  # no step trained twice
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4
    assert resumed["lr_schedulers"][0]["last_epoch"] == 4  # the per-step schedule went on from step 2 too

    best = tmp_path / "resumed" / "checkpoints" / "best.ckpt"
    stats = run(compose_train([*base, "mode=evaluate", f"ckpt_path={best}"], tmp_path / "evaluate"))
    metrics = json.loads((tmp_path / "evaluate" / "eval" / "metrics.json").read_text())
    assert metrics["stats"] == stats and metrics["images"] == 8
    predictions = json.loads((tmp_path / "evaluate" / "eval" / "predictions.json").read_text())
    assert {p["category_id"] for p in predictions} <= {1, 2, 4}
    assert all(set(p) == {"image_id", "category_id", "bbox", "score"} for p in predictions)
    assert (tmp_path / "evaluate" / "eval" / "per_class_ap.txt").read_text().count("triangle") == 1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_fast_dev_run_for_every_backbone(backbone: str, synthetic_cache: Path, tmp_path: Path) -> None:
    stats = run(compose_train([*TINY, *synthetic_overrides(synthetic_cache), f"model/backbone={backbone}",
                               "trainer.fast_dev_run=true"], tmp_path))
    assert set(stats) >= {"AP", "AP50"}  # one train step and one evaluated val batch


def test_bad_input_is_one_readable_line(tmp_path: Path) -> None:
    result = train_py(["data=custom", "model.weights=null", f"data.train_json={tmp_path}/missing.json",
                       f"data.train_images={tmp_path}",
                       f"data.val_json={tmp_path}/missing.json", f"data.val_images={tmp_path}"], tmp_path / "run")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: data.train_json: {tmp_path}/missing.json does "
                                                             "not exist")


def test_ddp_two_cpu_processes_train_and_evaluate_once(synthetic_cache: Path, tmp_path: Path) -> None:
    result = train_py([*TINY, *synthetic_overrides(synthetic_cache, num_val=7), "trainer=ddp", "trainer.devices=2",
                       "trainer.accelerator=cpu", "trainer.max_steps=2", "trainer.val_check_interval=2"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("COCO bbox evaluation at step 2") == 1  # rank 0 evaluates, once
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 7  # 4 images a rank, the padded repeat counted once
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
