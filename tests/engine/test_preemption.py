"""Runs that survive: SIGTERM and kill -9 sent to a real train.py process, resume=<run dir>, SIGUSR1, debug configs."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT, TINY, compose_train, synthetic_overrides

from detect.engine.preemption import PreemptionCheckpoint
from detect.engine.training import run
from detect.utils.errors import DetectError

pytestmark = pytest.mark.slow


def start_train(args: list[str], run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def saved_step(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"] if path.is_file() else -1


def wait_for_step(process: subprocess.Popen, last: Path, step: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while (saved := saved_step(last)) < step:
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.1)
    return saved


def logged_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "csv" / "metrics.csv") as file:
        return [int(row["step"]) for row in csv.DictReader(file) if row.get("train/loss")]


def stop_with_signal(signum: signal.Signals, synthetic_cache: Path, run_dir: Path, max_steps: int) -> int:
    """Send `signum` to a real train.py process once it has saved step 2; it must save at the step it is at, say so
    once, and exit 0 without a traceback. Returns that step."""
    process = start_train([*TINY, *synthetic_overrides(synthetic_cache), f"trainer.max_steps={max_steps}",
                           f"trainer.val_check_interval={2 * max_steps}",
                           "callbacks.preemption_checkpoint.every_n_steps=2"], run_dir)
    wait_for_step(process, run_dir / "checkpoints" / "last.ckpt", 2)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "Traceback" not in output, output[-3000:]
    stopped = re.findall(rf"last.ckpt at step (\d+) \({signum.name}: stopping\)", output)
    assert len(stopped) == 1 and int(stopped[0]) >= 2, output[-3000:]
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == int(stopped[0]) < max_steps
    return int(stopped[0])


def test_sigterm_saves_at_the_current_step_and_exits_cleanly(synthetic_cache: Path, tmp_path: Path) -> None:
    stop_with_signal(signal.SIGTERM, synthetic_cache, tmp_path, max_steps=500)


def test_kill_9_loses_at_most_the_interval_and_resume_continues_in_the_run(synthetic_cache: Path,
                                                                          tmp_path: Path) -> None:
    base = [*TINY, *synthetic_overrides(synthetic_cache), "trainer.val_check_interval=1000",
            "callbacks.preemption_checkpoint.every_n_steps=3", "+logger.csv.flush_logs_every_n_steps=1"]
    process = start_train([*base, "trainer.max_steps=500"], tmp_path)
    seen = wait_for_step(process, tmp_path / "checkpoints" / "last.ckpt", 6)
    process.send_signal(signal.SIGKILL)  # no handler, no clean-up: the last periodic checkpoint is what is left
    process.communicate(timeout=60)
    saved = saved_step(tmp_path / "checkpoints" / "last.ckpt")
    assert saved >= seen and saved % 3 == 0
    before = logged_steps(tmp_path)
    assert max(before) >= saved - 1  # the killed run logged steps up to (or past) its last checkpoint

    cfg = compose_train([*base, f"trainer.max_steps={saved + 4}", f"resume={tmp_path}"], tmp_path)
    run(cfg)
    steps = logged_steps(tmp_path)
    assert steps == list(range(saved + 4)), steps  # appended in the same file: every step once, none lost twice
    assert saved_step(tmp_path / "checkpoints" / "last.ckpt") == saved + 4
    with pytest.raises(DetectError, match="no checkpoints/last.ckpt"):
        run(compose_train([*base, f"resume={tmp_path / 'elsewhere'}"], tmp_path / "elsewhere"))


def test_sigusr1_saves_and_stops_at_the_step(synthetic_cache: Path, tmp_path: Path) -> None:
    """SIGUSR1, the signal a scheduler sends first, to a real train.py process (sent to pytest itself, after the
    suite had loaded OpenVINO, numba and the rest, the process ended with exit 139 mid-suite)."""
    step = stop_with_signal(signal.SIGUSR1, synthetic_cache, tmp_path, max_steps=2000)
    assert max(logged_steps(tmp_path)) == step - 1


def test_debug_overfit_collapses_the_loss_and_profiler_writes_its_report(synthetic_cache: Path,
                                                                          tmp_path: Path) -> None:
    run(compose_train([*TINY, *synthetic_overrides(synthetic_cache), "debug=overfit"], tmp_path / "overfit"))
    with open(tmp_path / "overfit" / "csv" / "metrics.csv") as file:
        losses = [float(row["train/loss"]) for row in csv.DictReader(file) if row.get("train/loss")]
    assert len(losses) == 60 and sum(losses[-10:]) < 0.5 * sum(losses[:10]), losses  # the same 2 batches memorized
    run(compose_train([*TINY, *synthetic_overrides(synthetic_cache), "debug=profiler", "trainer.max_steps=3",
                       "trainer.val_check_interval=3"], tmp_path / "profiler"))
    report = (tmp_path / "profiler" / "fit-profile.txt").read_text()
    assert "run_training_batch" in report and "Total" in report
    cfg = compose_train(["debug=fdr"], tmp_path)
    assert cfg.trainer.fast_dev_run is True and cfg.plots is False


class TwoRankStrategy:
    """Lightning's strategy.reduce as seen by rank 0 of two, the other rank's flags given; logs every collective."""

    def __init__(self, other_rank: list[int]) -> None:
        self.other_rank, self.collectives = other_rank, []

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "max"
        self.collectives.append(tensor.tolist())
        return torch.maximum(tensor, torch.tensor(self.other_rank, dtype=tensor.dtype))


def test_ranks_compare_signals_every_n_steps_and_all_stop_at_the_same_step(tmp_path: Path) -> None:
    saved = []
    strategy = TwoRankStrategy(other_rank=[0, 1])  # the other rank got SIGUSR1, this one did not
    trainer = SimpleNamespace(world_size=2, strategy=strategy, global_step=0, should_stop=False,
                              save_checkpoint=lambda path: saved.append((trainer.global_step, path)))
    callback = PreemptionCheckpoint(tmp_path, every_n_steps=3, every_minutes=None, check_every_n_steps=5)
    module = SimpleNamespace(device=torch.device("cpu"))
    for step in range(1, 8):
        trainer.global_step = step
        callback.on_train_batch_end(trainer, module, None, None, step)
        if trainer.should_stop:
            break
    assert strategy.collectives == [[0, 0]]  # one all-reduce, at step 5; none for the every-3-steps save
    assert saved == [(2, tmp_path / "last.ckpt"), (5, tmp_path / "last.ckpt")] and trainer.global_step == 5

    alone = SimpleNamespace(**{**vars(trainer), "world_size": 1, "strategy": None, "should_stop": False})
    callback._signalled = True  # one process: its own signal, at the next step, with no collective
    callback.on_train_batch_end(alone, module, None, None, 6)
    assert alone.should_stop
