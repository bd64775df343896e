"""Runs that survive crashes and preemption: checkpoints that bound the work lost, the checkpoint to resume from,
and logs that continue in the run's folder.

`PreemptionCheckpoint` writes last.ckpt every N steps and/or every M minutes of training, independently of
validation, and at the current step when the run is told to stop: SIGTERM (Lightning turns it into a clean exit
after the step) or SIGUSR1 (what schedulers send before preemption). Under SLURM with auto-requeue (trainer=slurm)
SIGUSR1 saves Lightning's hpc_ckpt_<n>.ckpt instead and requeues the job; the requeued job resumes from it. This
replaces Lightning's own SIGUSR1 handler, which saves inside the handler: with DDP the signal lands at a different
point on each rank, one blocks in the gradient all-reduce and the other in the save's barrier, and the job hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from detect.utils.errors import DetectError

LAST = "last.ckpt"


class PreemptionCheckpoint(L.Callback):
    """last.ckpt in `dirpath` every `every_n_steps` steps and/or `every_minutes` minutes, and on SIGTERM / SIGUSR1.

    With several processes the clock and the signal are decided together every `check_every_n_steps` steps (one
    all-reduce of two ints: a collective and, under NCCL, a host sync, so not every step); a single process
    decides every step."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None, every_minutes: float | None = 10.0,
                 check_every_n_steps: int = 10) -> None:
        if ((every_n_steps is not None and every_n_steps < 1) or (every_minutes is not None and every_minutes <= 0)
                or check_every_n_steps < 1):
            raise DetectError(f"callbacks.preemption_checkpoint: every_n_steps={every_n_steps} must be null or >= 1, "
                              f"every_minutes={every_minutes} null or > 0 and check_every_n_steps="
                              f"{check_every_n_steps} >= 1")
        self.path = Path(dirpath) / LAST
        self.every_n_steps, self.every_minutes = every_n_steps, every_minutes
        self.check_every_n_steps = check_every_n_steps
        self._signalled = False
        self._saved_step = -1
        self._saved_at = time.monotonic()
        self._previous_handler: Any = None
        self._requeue, self._signum = False, signal.SIGUSR1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step, self._saved_at = trainer.global_step, time.monotonic()
        environment = trainer._accelerator_connector.cluster_environment
        self._requeue = isinstance(environment, SLURMEnvironment) and environment.auto_requeue
        self._signum = (environment.requeue_signal if self._requeue else None) or signal.SIGUSR1
        if threading.current_thread() is threading.main_thread():  # replaces Lightning's handler (docstring)
            self._previous_handler = signal.signal(self._signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signalled = True

    def _save(self, trainer: L.Trainer, why: str, path: str | Path | None = None) -> None:
        """Save at this step (unless it is saved already: a stop that comes at a periodic save) and say why."""
        path = path or self.path
        if trainer.global_step != self._saved_step or path != self.path:
            trainer.save_checkpoint(path)
            self._saved_step, self._saved_at = trainer.global_step, time.monotonic()
        rank_zero_info(f"saved {path} at step {trainer.global_step} ({why})")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # the same on every rank: global_step and the step of the last save (every save is decided together)
        by_steps = bool(self.every_n_steps and trainer.global_step - self._saved_step >= self.every_n_steps)
        by_time, signalled = self._decide_together(trainer, pl_module)
        if signalled and self._requeue:
            self._save(trainer, f"{signal.Signals(self._signum).name}: requeueing",
                       trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir))
            if trainer.is_global_zero:
                requeue_slurm_job()
            trainer.should_stop = True
        elif signalled:
            self._save(trainer, "SIGUSR1: stopping")
            trainer.should_stop = True
        elif by_steps or by_time:
            self._save(trainer, f"every {self.every_n_steps} steps" if by_steps else f"every {self.every_minutes:g} min")

    def _decide_together(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[bool, bool]:
        """(time to save, signalled), the same on every rank: any rank's clock or signal counts, at the steps where
        the ranks compare them (every step for a single process)."""
        by_time = bool(self.every_minutes and time.monotonic() - self._saved_at >= 60.0 * self.every_minutes)
        if trainer.world_size == 1:
            return by_time, self._signalled
        if trainer.global_step % self.check_every_n_steps:
            return False, False
        flags = torch.tensor([by_time, self._signalled], dtype=torch.int32, device=pl_module.device)
        by_time, signalled = trainer.strategy.reduce(flags, reduce_op="max").tolist()
        return bool(by_time), bool(signalled)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self._save(trainer, "SIGTERM: stopping")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(self._signum, self._previous_handler)
            self._previous_handler = None


def requeue_slurm_job() -> None:
    """`scontrol requeue` this job (an array task as <array job>_<task>), as Lightning's SIGUSR1 handler would."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    rank_zero_info(f"requeued SLURM job {job}" if result.returncode == 0 else
                   f"`scontrol requeue {job}` failed ({result.returncode}): {result.stderr.strip()}; stopping here")


def newest_checkpoint(run_dir: str | Path) -> Path:
    """The newest of a run's last.ckpt and Lightning's SLURM hpc_ckpt_*.ckpt, with one readable error."""
    run_dir = Path(run_dir)
    found = [*run_dir.glob(f"checkpoints/{LAST}"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    if not found:
        raise DetectError(f"resume={run_dir}: no checkpoints/{LAST} (or hpc_ckpt_*.ckpt) there; pass the folder of a "
                          "train.py run, e.g. outputs/2026-11-22/17-00-00")
    return max(found, key=os.path.getmtime)
