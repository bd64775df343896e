"""A one-node SLURM cluster inside this machine for the tests: munged, slurmctld and slurmd run as root in the
foreground, with their config, sockets, state and logs in one folder (nothing in /etc is changed).

    uv run python tests/slurm/cluster.py /tmp/slurm   # start one; prints the SLURM_CONF to export; Ctrl-C (or kill <pid>) stops it

Every step that cannot be done raises ClusterError with the exact error text, so that a test can skip with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo")
PACKAGES = ("slurm-wlm", "munge")

CONFIG = """\
ClusterName=detect
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
# cred_expire (default 120 s) also delays the restart of a requeued job; KillWait: SIGTERM to SIGKILL
AuthInfo=socket={folder}/munge.socket,cred_expire=5
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1   # a requeued job becomes eligible again between events: look every second
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/jobcomp.txt
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class ClusterError(RuntimeError):
    """A step of the set-up failed; the message has the command's own error text."""


def _run(command: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ClusterError(f"`{' '.join(command)}` exited {result.returncode}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def install() -> None:
    """apt-get install slurm-wlm and munge when a binary is missing (root with apt-get only)."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError(f"{', '.join(missing)} not found, and installing {' '.join(PACKAGES)} needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], env=env, timeout=600)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env, timeout=900)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as file:
        total_kb = int(next(line for line in file if line.startswith("MemTotal")).split()[1])
    return total_kb // 2048  # half of it: the node's advertised memory must not exceed what slurmd finds


class Cluster:
    """munged + slurmctld + slurmd with all their files in `folder`; `env` is os.environ with SLURM_CONF set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> None:
        """Write the key and slurm.conf, start the three daemons and wait until sinfo shows the node idle."""
        if os.geteuid() != 0:
            raise ClusterError("the test cluster runs slurmd as root (it starts jobs as any user); this is not root")
        install()
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # munged refuses a socket or key in a folder others can write
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.conf.write_text(CONFIG.format(folder=self.folder, ctld_port=_free_port(), slurmd_port=_free_port(),
                                           cpus=max(2, os.cpu_count() or 1), memory_mb=_memory_mb()))
        self._spawn("munged", ["munged", "-F", "-f", f"--key-file={key}", f"--socket={self.folder}/munge.socket",
                               f"--pid-file={self.folder}/munged.pid", f"--seed-file={self.folder}/munged.seed",
                               f"--log-file={self.folder}/munged.log"])
        self._wait(lambda: (self.folder / "munge.socket").exists(), timeout, "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(lambda: self.node_state() == "idle", timeout, "sinfo to show the node idle")

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.folder / f"{name}.out", "w")
        self.processes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        log.close()

    def _wait(self, ready: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for process in self.processes:
                if process.poll() is not None:
                    raise ClusterError(f"`{' '.join(process.args)}` exited {process.returncode} while waiting for "
                                       f"{what}: {self.logs()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"no {what} within {timeout:.0f} s: {self.logs()}")
            time.sleep(0.2)

    def node_state(self) -> str:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    def _jobs_left(self) -> bool:
        result = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env, capture_output=True, text=True)
        return result.returncode == 0 and bool(result.stdout.strip())

    def logs(self, tail: int = 1500) -> str:
        """The end of every daemon's log, for error messages."""
        parts = []
        for path in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out")):
            parts.append(f"--- {path.name}: {path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job and wait until it is gone (slurmstepd outlives slurmd), then SIGTERM the daemons."""
        if self.processes and all(process.poll() is None for process in self.processes):
            subprocess.run(["scancel", "--user", str(os.geteuid())], env=self.env, capture_output=True)
            deadline = time.monotonic() + 30
            while self._jobs_left() and time.monotonic() < deadline:
                time.sleep(0.5)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes = []


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill <pid> stops the daemons too, as Ctrl-C does
    cluster = Cluster(Path(sys.argv[1]).resolve())
    try:
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}   # node {cluster.node_state()}; Ctrl-C stops the cluster", flush=True)
        while all(process.poll() is None for process in cluster.processes):
            time.sleep(1)
        print(cluster.logs(), file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
