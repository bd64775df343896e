"""Train-loop overhead: the project's Lightning training against a plain PyTorch loop, same work, img/s of both.

    uv run python -m benchmarks.train_loop                                # the demo config, seeds 0 and 2
    uv run python -m benchmarks.train_loop --steps 30 --warmup 5 --seeds 0 1 2 --repeats 3
    uv run python -m benchmarks.train_loop --threads 1 --steps 8 --warmup 2 --seeds 2  # on a shared machine
    uv run python -m benchmarks.train_loop --overrides data.batch_size=4  # any train.py override

Both sides train a deep copy of one model (torch.manual_seed(seed), then build_model from the composed train
config) on batches of the project's datamodule (one instance per side, same config: same sampler, flips and
collate), with the optimizer and per-step scheduler of the config, and torch.manual_seed(seed) again just before
the first batch is drawn, so that the flips and the RPN / ROI box samplers draw the same random numbers:

- lightning: a `lightning.Trainer` built from the `trainer` config (the demo's: 32-true, gradient_clip_val 5,
  log_every_n_steps 20) with max_steps=warmup+steps, the config's logger (CSV) and callbacks (progress bar,
  LearningRateMonitor, PreemptionCheckpoint's per-step check), no validation (limit_val_batches=0) and no
  ModelCheckpoint (the demo writes none between validations), fitting detect.engine.module.DetectionModule
  (training_step with its 5 logged losses, configure_optimizers).
- plain: torchvision references' loop: model.train(); for images, targets in loader: uint8 -> float / 255,
  loss = sum(model(images, targets).values()); zero_grad; backward; clip_grad_norm_ (when the config clips);
  optimizer.step(); scheduler.step(). Lightning does not prefetch a loader that has a length, so both draw the
  batches and the global RNG in the same order and end with the same weights (tests/test_train_loop.py).

A step is timed from the end of one optimizer step to the end of the next (the next batch's loading, hooks and
logging included); "outside" is the part of it before the model's forward starts (loading, Lightning's hooks,
logging, the scheduler: less noisy than the whole step on a shared machine). The first --warmup steps are not
counted, nor the Trainer's set-up and teardown (the whole run is printed apart). Rounds alternate the order
(lightning, plain, then plain, lightning, ...) to expose drift.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.optim.optimizer import register_optimizer_step_post_hook
from torchvision.models.detection import FasterRCNN

from benchmarks.coco_scale import cpu_flags
from detect.config import compose
from detect.data.datamodule import CocoDataModule
from detect.engine.lr_scaling import lr_scaling, scaled_configs
from detect.engine.module import DetectionModule
from detect.evaluation.coco import CocoEvaluator
from detect.modeling.model import build_model
from detect.utils.device import device_name
from detect.utils.errors import DetectError

SIDES = ("lightning", "plain")


@contextmanager
def step_clock(model: FasterRCNN, device: torch.device | None = None) -> Iterator[list[tuple[float, float]]]:
    """perf_counter at the start of the forward and at the end of the optimizer step, for every training step of
    `model` (the same hooks on both sides); on a GPU `device`, after waiting for its queued work."""

    def now() -> float:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    marks: list[tuple[float, float]] = []
    start = [0.0]
    handles = [model.register_forward_pre_hook(lambda *_: start.__setitem__(0, now())),
               register_optimizer_step_post_hook(lambda *_: marks.append((start[0], now())))]
    try:
        yield marks
    finally:
        for handle in handles:
            handle.remove()


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """configs/train.yaml composed as train.py would, with `output_dir` set."""
    return compose("train", overrides, output_dir)


def make_datamodule(cfg: DictConfig) -> CocoDataModule:
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def initial_model(cfg: DictConfig, num_classes: int, seed: int) -> FasterRCNN:
    """The random initial weights both sides start from (deep-copied into each run)."""
    torch.manual_seed(seed)
    return build_model(cfg.model, num_classes=num_classes)


def train_plain(cfg: DictConfig, model: FasterRCNN, datamodule: CocoDataModule, steps: int,
                seed: int) -> list[tuple[float, float]]:
    """torchvision references' training loop for `steps` steps (in place); the `step_clock` marks."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim, schedule = scaled_configs(cfg, lr_scaling(cfg))
    optimizer = instantiate(optim)(params)
    scheduler = instantiate(schedule)(optimizer)
    clip = cfg.trainer.get("gradient_clip_val")
    model.train()
    torch.manual_seed(seed)
    with step_clock(model) as marks:
        for images, targets in islice(datamodule.train_dataloader(), steps):
            images = [image.float().div_(255) for image in images]
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            scheduler.step()
    return marks


def train_lightning(cfg: DictConfig, model: FasterRCNN, datamodule: CocoDataModule, steps: int,
                    seed: int, device: torch.device | None = None) -> list[tuple[float, float]]:
    """`lightning.Trainer.fit` of the project's module for `steps` steps (in place); the `step_clock` marks (taken
    after a synchronize on a GPU `device`)."""
    classes = datamodule.classes
    optim, schedule = scaled_configs(cfg, lr_scaling(cfg))
    module = DetectionModule(model, classes, CocoEvaluator(datamodule.val_set.coco, classes),
                             optimizer=instantiate(optim), scheduler=instantiate(schedule),
                             output_dir=cfg.output_dir, plots=False)
    callbacks = [callback for name, c in cfg.callbacks.items() if name != "model_checkpoint"
                 and (callback := instantiate(c)) is not None]  # the recipe's optional ones are null when off
    trainer: L.Trainer = instantiate(cfg.trainer, max_steps=steps, limit_val_batches=0, enable_checkpointing=False,
                                     callbacks=callbacks, logger=[instantiate(c) for c in cfg.logger.values()])
    torch.manual_seed(seed)
    with step_clock(model, device) as marks:
        trainer.fit(module, datamodule=datamodule)
    return marks


def benchmark(cfg: DictConfig, seeds: list[int], steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Per seed and side: each round's timed step seconds and whole-run seconds; img/s from the medians."""
    if warmup < 1 or steps < 1:
        raise DetectError(f"--warmup {warmup} and --steps {steps} must be >= 1 (a step is timed from the previous end)")
    datamodules = {side: make_datamodule(cfg) for side in SIDES}
    if warmup + steps > len(datamodules["plain"].train_dataloader()):
        raise DetectError(f"--warmup {warmup} + --steps {steps} is more than one epoch's batches")
    runners = {"lightning": train_lightning, "plain": train_plain}
    batch = datamodules["plain"].batch_size
    figures: dict[str, Any] = {"batch_size": batch, "seeds": {}}
    for seed in seeds:
        base = initial_model(cfg, len(datamodules["plain"].classes) + 1, seed)
        rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for index in range(repeats):
            for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                start = time.perf_counter()
                marks = runners[side](cfg, copy.deepcopy(base), datamodules[side], warmup + steps, seed)
                ends = [end for _, end in marks]
                step_s = [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])]
                outside_s = [begin - end for (_, end), (begin, _) in zip(marks[warmup - 1:], marks[warmup:])]
                rounds[side].append({"step_s": step_s, "outside_s": outside_s, "run_s": time.perf_counter() - start})
                print(f"seed {seed} round {index} {side:9s}: median {statistics.median(step_s):.3f} s/step, "
                      f"{statistics.median(outside_s) * 1000:.1f} ms of it outside forward-to-optimizer-step, "
                      f"whole run {rounds[side][-1]['run_s']:.1f} s", flush=True)
        medians = {side: statistics.median([s for r in rounds[side] for s in r["step_s"]]) for side in SIDES}
        outside = {side: statistics.median([s for r in rounds[side] for s in r["outside_s"]]) for side in SIDES}
        figures["seeds"][seed] = {"rounds": rounds, "median_s": medians, "outside_s": outside,
                                  "img_s": {side: batch / medians[side] for side in SIDES}}
    per_seed = figures["seeds"].values()
    figures["img_s"] = {side: batch * len(seeds) / sum(s["median_s"][side] for s in per_seed) for side in SIDES}
    figures["ratio"] = figures["img_s"]["plain"] / figures["img_s"]["lightning"]
    return figures


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_report(figures: dict[str, Any]) -> None:
    batch = figures["batch_size"]
    print(f"\n{'seed':>4} {'side':9s} {'median s/step':>13} {'img/s':>7} {'outside ms':>10}  per-round medians s/step")
    for seed, row in figures["seeds"].items():
        for side in SIDES:
            rounds = " ".join(f"{statistics.median(r['step_s']):.3f}" for r in row["rounds"][side])
            print(f"{seed:4d} {side:9s} {row['median_s'][side]:13.3f} {row['img_s'][side]:7.2f} "
                  f"{row['outside_s'][side] * 1000:10.1f}  {rounds}")
        ratio = row["img_s"]["plain"] / row["img_s"]["lightning"]
        extra = (row["outside_s"]["lightning"] - row["outside_s"]["plain"]) / row["median_s"]["plain"]
        print(f"{seed:4d} plain / lightning img/s {ratio:.3f} (Lightning overhead {ratio - 1:+.1%}; from the time "
              f"outside the model's work alone {extra:+.1%})")
    ratio = figures["ratio"]
    print(f"all seeds (batch {batch}): lightning {figures['img_s']['lightning']:.2f} img/s, plain "
          f"{figures['img_s']['plain']:.2f} img/s, plain / lightning {ratio:.3f} (Lightning overhead {ratio - 1:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (default: 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first, for both (default: 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2], help="initial weights (default: 0 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both sides per seed (default: 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one a core)")
    parser.add_argument("--overrides", nargs="*", default=[], help="train.py overrides, e.g. data.batch_size=4")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; commit {commit()}; "
          f"{device_name(torch.device('cpu'))}; {cpu_flags()}; {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; torch {torch.__version__}, lightning {L.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"seeds {args.seeds}, {args.warmup} warm-up + {args.steps} timed steps, {args.repeats} rounds; "
          f"overrides {args.overrides}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            figures = benchmark(compose_train(args.overrides, Path(tmp)), args.seeds, args.steps, args.warmup,
                                args.repeats)
        except DetectError as error:
            raise SystemExit(f"error: {error}") from None
    print_report(figures)
    print(f"load average {os.getloadavg()[0]:.2f} (other processes on the cores make the whole-step times noisy)")


if __name__ == "__main__":
    main()
