"""SLURM for real: a one-node cluster inside this machine (tests/slurm/cluster.py), a 2-task DDP job that sbatch and
srun start with trainer=slurm, a job preempted with SIGUSR1 that Lightning saves, requeues and resumes, and infer.py
shards of a folder of videos submitted by the submitit launcher and merged."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, TINY_INFER, compose_infer, synthetic_overrides, write_checkpoint, write_clip
from omegaconf import DictConfig
from slurm.cluster import Cluster, ClusterError

from detect.config import check_group_overrides, compose
from detect.inference.shards import infer_files
from detect.structures import Classes

DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (ClusterError, OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        pytest.skip(f"no SLURM cluster in this machine: {error}")
    yield cluster
    cluster.stop()


def submit(cluster: Cluster, folder: Path, overrides: list[str]) -> str:
    """sbatch a job of 2 tasks on one node (Lightning wants --ntasks-per-node, not --ntasks) whose srun starts
    train.py trainer=slurm in `folder`; return its job id."""
    train = shlex.join([sys.executable, str(ROOT / "train.py"), "trainer=slurm", "trainer.accelerator=cpu", *TINY,
                        *overrides])
    script = folder / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name=detect-test --nodes=1 --ntasks-per-node=2 --requeue\n"
                      f"#SBATCH --output={folder}/job.log --open-mode=append\n"
                      f"echo \"batch script start, restart count ${{SLURM_RESTART_COUNT:-0}}\"\nsrun {train}\n")
    env = {**cluster.env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(["sbatch", "--parsable", f"--chdir={folder}", str(script)], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def job_fields(cluster: Cluster, job_id: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=cluster.env, check=True,
                          capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


def wait_done(cluster: Cluster, job_id: str, log: Path, timeout: float = 150) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (fields := job_fields(cluster, job_id))["JobState"] not in DONE:
        assert time.monotonic() < deadline, f"job {job_id} still {fields['JobState']}: {tail(log)}"
        time.sleep(0.5)
    return fields


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.is_file() else f"{log} absent"


def saved_step(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"] if path.is_file() else -1


@pytest.mark.slow
def test_two_ddp_tasks_are_preempted_requeued_resume_to_max_steps_and_evaluate_once(cluster: Cluster,
                                                                                      synthetic_cache: Path,
                                                                                      tmp_path: Path) -> None:
    """A 2-task DDP job (sbatch, srun, trainer=slurm) gets SIGUSR1 as sbatch --signal=USR1@90 sends it before the
    time limit: Lightning saves, requeues, and the requeued job resumes in the same run folder, then rank 0
    evaluates once on both ranks' halves of the val images."""
    max_steps = 12
    job_id = submit(cluster, tmp_path, [*synthetic_overrides(synthetic_cache), f"trainer.max_steps={max_steps}",
                                        f"trainer.val_check_interval={max_steps}",
                                        "callbacks.preemption_checkpoint.every_n_steps=2",
                                        "callbacks.preemption_checkpoint.check_every_n_steps=2"])
    log, run_dir = tmp_path / "job.log", tmp_path / "outputs" / "slurm" / job_id
    deadline = time.monotonic() + 120
    while (seen := saved_step(run_dir / "checkpoints" / "last.ckpt")) < 2:
        assert job_fields(cluster, job_id)["JobState"] in {"PENDING", "RUNNING"}, tail(log)
        assert time.monotonic() < deadline, f"no checkpoint in time: {tail(log)}"
        time.sleep(0.2)
    # what sbatch --signal=USR1@90 does before the time limit: SIGUSR1 to every task of the job's steps
    subprocess.run(["scancel", "--signal=USR1", job_id], env=cluster.env, check=True)
    fields = wait_done(cluster, job_id, log)
    output = tail(log, 100_000)
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", output[-4000:]
    assert fields["NumTasks"] == "2", output[-4000:]
    for rank in (0, 1):
        assert f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in output, output[-4000:]
    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert [path.name for path in hpc] == ["hpc_ckpt_1.ckpt"], output[-4000:]
    preempted_at = saved_step(hpc[0])
    assert seen <= preempted_at < max_steps  # saved at the step it was at when the signal came
    assert f"saved {hpc[0]} at step {preempted_at} (SIGUSR1: requeueing)" in output, output[-4000:]
    assert f"requeued SLURM job {job_id}" in output, output[-4000:]
    starts = re.findall(r"batch script start, restart count (\d)", output)
    assert starts == ["0", "1"], output[-4000:]
    resumed = output.split("restart count 1", 1)[1]
    assert f"Restoring states from the checkpoint path at {hpc[0]}" in resumed, resumed[-4000:]
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == max_steps
    # one run folder for both ranks and both jobs (trainer=slurm names it by the job); rank 0 evaluates, once
    assert list((tmp_path / "outputs" / "slurm").iterdir()) == [run_dir]
    assert output.count(f"COCO bbox evaluation at step {max_steps}") == 1, output[-4000:]
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())["images"] == 8  # both ranks' halves


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    """configs/train.yaml with its hydra node (launcher, run dir), as train.py -m would compose it."""
    return compose("train", overrides, return_hydra_config=True)


def test_launcher_submits_one_task_per_device_with_usr1_and_requeue(monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ["hydra/launcher=slurm", "trainer=slurm", "trainer.devices=4", "trainer.num_nodes=2",
                 "hydra.launcher.signal_delay_s=120"]
    check_group_overrides(overrides)  # train.py's own check of group options passes them, and Hydra's plugins' own
    check_group_overrides(["hydra/launcher=submitit_local", "hydra/launcher=basic"])
    launcher = compose_with_hydra(overrides).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.max_num_timeout) == (2, 4, 0)
    assert dict(launcher.additional_parameters) == {"signal": "USR1@120", "requeue": True}
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # every rank and the requeued job: one run dir, named by the job
    cfg = compose_with_hydra(["trainer=slurm"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 1 and cfg.hydra.run.dir == "outputs/slurm/4242"


@pytest.mark.slow
def test_infer_shards_run_as_slurm_jobs_and_merge_into_the_single_process_detections(cluster: Cluster,
                                                                                      tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 3), ("b", 4), ("c", 5)):
        write_clip(videos / f"{name}.avi", frames=frames)
    weights = tmp_path / "weights.ckpt"  # seeded random weights: boxes and scores to compare, the same in every run
    write_checkpoint(weights, compose_infer(["source=x"], tmp_path).model, Classes(["square"], [1]))
    overrides = [f"source={videos}", f"weights={weights}", "score_threshold=0.05", "max_det=5"]
    single = infer_files(compose_infer(overrides, tmp_path / "single"))  # one process here, the jobs' threads=1
    sweep = tmp_path / "sweep"
    env = {**cluster.env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    sharded = subprocess.run([sys.executable, str(ROOT / "infer.py"), "-m", *TINY_INFER, *overrides,
                              "hydra/launcher=slurm", "shard=0/2,1/2",
                              f"hydra.sweep.dir={sweep}", "hydra.launcher.timeout_min=10"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=400)
    logs = "".join(path.read_text(errors="replace")[-2000:] for path in sweep.glob(".submitit/*/*.out"))
    assert sharded.returncode == 0, (sharded.stdout + sharded.stderr)[-4000:] + logs
    array_jobs = sorted(path.name for path in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", path.name))
    assert len(array_jobs) == 2, logs  # submitit submits the sweep as one job array: <job>_0 and <job>_1
    for job in array_jobs:  # submitit returns at the job's result file, which can be before SLURM's end of the job
        assert wait_done(cluster, job, sweep / ".submitit" / job / f"{job}_0_log.out")["JobState"] == "COMPLETED", logs
    assert [json.loads((sweep / job / "files.json").read_text())["files"] for job in ("0", "1")] == [
        ["a.avi", "c.avi"], ["b.avi"]]
    merged = json.loads((sweep / "summary.json").read_text())
    assert merged["shards"] == 2 and [row["frames"] for row in merged["rows"]] == [3, 4, 5]
    assert merged["total"]["detections"] == single["total"]["detections"]
    records = json.loads((sweep / "detections.json").read_text())
    assert len(records) > 12 and records == json.loads((tmp_path / "single" / "detections.json").read_text())
