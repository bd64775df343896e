"""Gathering every rank's predictions for the evaluation, at COCO-val2017 size, on 2 gloo processes of this machine:
time and rank 0's memory of `gather_predictions` (to rank 0 only) against the all_gather_object to every rank
that `CocoEvaluator` used before, on the same shards in the same processes."""

from __future__ import annotations

import gc
import multiprocessing
import os
import socket
import time
from typing import Any

import torch.distributed as dist

from benchmarks.synthetic_eval import synthetic_val
from detect.bench.measure import peak_rss_since_reset_mb, reset_peak_rss, rss_mb
from detect.evaluation.coco import gather_predictions

WORLD = 2


def _all_gather(predictions: dict[int, list]) -> dict[int, list]:
    """The gathering CocoEvaluator did before: every rank receives every shard."""
    shards: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, predictions)
    return {image_id: result for shard in shards for image_id, result in shard.items()}


def _rank(rank: int, port: int, images: int, detections: int, queue: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    _, results, _ = synthetic_val(images, detections)
    predictions: dict[int, list] = {}
    for record in results:
        if record["image_id"] % WORLD == rank:
            predictions.setdefault(record["image_id"], []).append(record)
    del results
    gc.collect()
    figures = {"shard_detections": sum(map(len, predictions.values()))}
    for name, gather in (("all_gather_object to every rank (before)", _all_gather),
                         ("gather_object to rank 0 (now)", gather_predictions)):
        dist.barrier()
        gc.collect()
        before = rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        gathered = gather(predictions)
        seconds = time.perf_counter() - start
        figures[name] = {"s": seconds, "rss_before_mib": before, "peak_added_mib": peak_rss_since_reset_mb() - before,
                         "detections": sum(map(len, gathered.values()))}
        del gathered
    all_figures: list[dict | None] = [None] * WORLD
    dist.all_gather_object(all_figures, figures)
    if rank == 0:
        queue.put(all_figures)
    dist.destroy_process_group()


def measure_gather(images: int, detections: int) -> str:
    """Both gatherings in 2 fresh (spawned) processes; a report of rank 0's and rank 1's figures."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_rank, args=(rank, port, images, detections, queue)) for rank in range(WORLD)]
    for process in processes:
        process.start()
    figures = queue.get(timeout=1800)
    for process in processes:
        process.join()
    lines = [f"gathering predictions, {WORLD} gloo processes ({figures[0]['shard_detections']} + "
             f"{figures[1]['shard_detections']} detections):"]
    for name in (key for key in figures[0] if key != "shard_detections"):
        lines += [f"  {name}: " + "; ".join(
            f"rank {rank} {f[name]['s']:.2f} s, RSS {f[name]['rss_before_mib']:.0f} MiB + peak "
            f"{f[name]['peak_added_mib']:.0f} MiB, holds {f[name]['detections']} detections after"
            for rank, f in enumerate(figures))]
    return "\n".join(lines)
