"""What PreemptionCheckpoint's per-step check costs a DDP step: 2 gloo ranks on this machine, microseconds a step.

    uv run python -m benchmarks.preemption_check                      # 3 rounds of 2000 steps per variant
    uv run python -m benchmarks.preemption_check --steps 5000 --rounds 5

Both ranks run the same loop of `--steps` steps per variant, in rounds (each variant once a round, the order
rotating), started together by a barrier:
- nothing: the loop alone (the baseline the others are measured against);
- broadcast: `trainer.strategy.broadcast((bool, bool, bool))` every step, what the callback did before it decided
  every N steps (a pickled object: two collectives);
- callback N=k: `PreemptionCheckpoint.on_train_batch_end` as it is, comparing clocks and signals every k steps
  (default 10, and 1 for reference), nothing due, so nothing is saved.
The strategy is Lightning's DDPStrategy on a gloo process group (its collectives are the real ones); the trainer
and module the hook reads are stand-ins holding it, the step count and the device. Under NCCL each collective
also syncs the host with the GPU, which this CPU-only measurement cannot show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.strategies import DDPStrategy

from detect.engine.preemption import PreemptionCheckpoint
from detect.utils.device import device_name


def step_variants(folder: str) -> dict[str, Callable[[SimpleNamespace], object]]:
    """What each variant does in one step, given the stand-in trainer."""
    module = SimpleNamespace(device=torch.device("cpu"))
    callbacks = {n: PreemptionCheckpoint(folder, every_minutes=10.0, check_every_n_steps=n) for n in (10, 1)}
    return {
        "nothing": lambda trainer: None,
        "broadcast": lambda trainer: trainer.strategy.broadcast((False, False, False)),
        **{f"callback N={n}": (lambda trainer, c=c: c.on_train_batch_end(trainer, module, None, None, 0))
           for n, c in callbacks.items()},
    }


def rank_loop(rank: int, port: int, steps: int, rounds: int, results: dict) -> None:
    """One rank: every variant `steps` steps a round; rank 0 stores the per-step microseconds of each round."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    trainer = SimpleNamespace(strategy=DDPStrategy(process_group_backend="gloo"), world_size=2, global_step=0)
    with tempfile.TemporaryDirectory() as folder:
        variants = step_variants(folder)
        names = list(variants)
        timings: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            for name in names[index % len(names):] + names[:index % len(names)]:
                dist.barrier()
                start = time.perf_counter()
                for step in range(1, steps + 1):
                    trainer.global_step = step
                    variants[name](trainer)
                timings[name].append((time.perf_counter() - start) / steps * 1e6)
        dist.barrier()
    if rank == 0:
        results.update(timings)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="steps per variant and round (default: 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument("--port", type=int, default=29571, help="the gloo rendezvous port on 127.0.0.1")
    args = parser.parse_args()
    print(f"{device_name(torch.device('cpu'))}, {os.cpu_count()} cores; torch {torch.__version__}; 2 gloo ranks, "
          f"1 thread each; {args.rounds} rounds x {args.steps} steps; load average {os.getloadavg()[0]:.2f}",
          flush=True)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(rank_loop, args=(args.port, args.steps, args.rounds, results), nprocs=2)
        timings = dict(results)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print("\n| variant | µs a step (median of rounds) | rounds | added to the loop, µs |\n|---|---:|---|---:|")
    for name, values in timings.items():
        print(f"| {name} | {medians[name]:.1f} | {' '.join(f'{v:.1f}' for v in values)} | "
              f"{medians[name] - medians['nothing']:.1f} |")
    added = {name: medians[name] - medians["nothing"] for name in medians}
    print(f"\nbroadcast every step / callback N=10: {added['broadcast'] / added['callback N=10']:.1f}x the added "
          f"time per step; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
