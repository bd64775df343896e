"""The data pipeline at COCO scale: a COCO-train2017-sized file (118,287 images, 862k boxes, file names linked to
one tiny JPEG, no segmentations), its set-up time and memory per rank, and the private memory of 2 DataLoader
workers over a whole epoch, for the flat records against the per-image Python lists held before.

    uv run python -m benchmarks.coco_scale [--images 118287 --boxes 862000 --workers 2]

Each measured "rank" is a fresh process forked from this one: `load_coco` alone; the train split as now (records,
no COCO index); the layout before (pycocotools' index + a list of image ids and one (boxes, labels) tuple per
image, read by the same `CocoDetection.__getitem__`); the val split as now (records + the index the evaluator
scores against) on a COCO-val2017-sized file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import DataLoader

from detect.bench.measure import peak_rss_since_reset_mb, reset_peak_rss
from detect.data.coco import CocoDetection, load_coco
from detect.data.records import Records
from detect.utils.device import device_name

COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
IMAGE_SIZE = (64, 48)  # (width, height) of the one JPEG: decoding stays cheap, the epoch a few minutes


def write_coco_scale(folder: Path, images: int, boxes: int, name: str, seed: int = 0) -> Path:
    """A COCO json of `images` images (1% without boxes, COCO-like sparse ids in shuffled order, every file name
    a link to one JPEG) and `boxes` boxes (1% crowd, some past the border), written in chunks; its path."""
    rng = np.random.default_rng(seed)
    image_dir = folder / "images"
    image_dir.mkdir(exist_ok=True)
    jpeg = image_dir / "one.jpg"
    if not jpeg.exists():
        cv2.imwrite(str(jpeg), rng.integers(0, 255, (IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8))
    ids = rng.choice(581929, images, replace=False) + 1
    width, height = IMAGE_SIZE
    with_boxes = images - images // 100
    owner = np.sort(rng.integers(0, with_boxes, boxes))
    xy = rng.uniform(0, (width - 4, height - 4), (boxes, 2)).round(2)
    wh = rng.uniform(1, (width / 2, height / 2), (boxes, 2)).round(2)
    category = rng.choice(COCO_CATEGORY_IDS, boxes)
    crowd = (rng.random(boxes) < 0.01).astype(int)
    path = folder / name
    with path.open("w") as file:
        file.write('{"images": [')
        for i, image_id in enumerate(ids.tolist()):
            (image_dir / f"{image_id:012d}.jpg").unlink(missing_ok=True)
            (image_dir / f"{image_id:012d}.jpg").symlink_to("one.jpg")
            file.write(f'{"," if i else ""}{{"id": {image_id}, "file_name": "{image_id:012d}.jpg", '
                       f'"width": {width}, "height": {height}}}')
        file.write('], "annotations": [')
        for start in range(0, boxes, 100_000):
            chunk = slice(start, min(boxes, start + 100_000))
            rows = zip(range(chunk.start, chunk.stop), ids[owner[chunk]].tolist(), category[chunk].tolist(),
                       xy[chunk].tolist(), wh[chunk].tolist(), crowd[chunk].tolist())
            file.write("".join(f'{"," if k else ""}{{"id": {k + 1}, "image_id": {i}, "category_id": {c}, '
                               f'"bbox": [{x}, {y}, {w}, {h}], "area": {round(w * h, 2)}, "iscrowd": {z}}}'
                               for k, i, c, (x, y), (w, h), z in rows))
        file.write('], "categories": ')
        json.dump([{"id": c, "name": f"class {c}"} for c in COCO_CATEGORY_IDS], file)
        file.write("}")
    return path


class ListRecords:
    """The layout before: pycocotools' image dicts, a list of image ids and one (boxes, labels) tuple per image,
    with the interface of `Records` that `CocoDetection.__getitem__` reads."""

    def __init__(self, coco: COCO, records: Records) -> None:
        self.coco = coco
        self.image_ids = records.image_ids.tolist()
        self.targets = [records.target(index) for index in range(len(records))]

    def __len__(self) -> int:
        return len(self.image_ids)

    def file_name(self, index: int) -> str:
        return self.coco.imgs[self.image_ids[index]]["file_name"]

    def target(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.targets[index]


def private_mib(pid: int) -> float:
    """Memory only process `pid` holds (USS: its private clean and dirty pages), from /proc/<pid>/smaps_rollup."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(fields[key].split()[0]) for key in ("Private_Clean", "Private_Dirty")) / 1024.0


def rss_mib() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024.0


def epoch_memory(dataset: CocoDetection, workers: int, batch_size: int, points: int) -> tuple[list, float]:
    """One shuffled epoch through `workers` DataLoader workers (each batch collated to its length in the worker);
    (samples seen, each worker's private MiB) about `points` times, and the epoch's seconds."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=len,
                        generator=torch.Generator().manual_seed(0))
    every, rows, seen = max(1, len(loader) // points), [], 0
    start = time.perf_counter()
    for batch, size in enumerate(loader):
        seen += size
        if batch % every == 0 or batch == len(loader) - 1:
            pids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
            rows.append((seen, [private_mib(int(pid)) for pid in pids]))
    return rows, time.perf_counter() - start


def measure_rank(kind: str, path: Path, workers: int, batch_size: int, points: int) -> dict[str, Any]:
    """Set-up seconds, RSS at the start, peak RSS and the RSS it keeps (MiB) of one kind of rank, and its epoch
    when it has one. A forked rank's RSS leaves out the library pages it has not touched since the fork."""
    reset_peak_rss()
    before, start = rss_mib(), time.perf_counter()
    held = load_coco(path) if kind == "load_coco" else CocoDetection(path, path.parent / "images",
                                                                      keep_coco=kind != "records")
    if kind == "lists":
        held.records = ListRecords(held.coco, held.records)
    figures = {"setup_s": time.perf_counter() - start, "start_rss_mib": before,
               "peak_rss_mib": peak_rss_since_reset_mb(), "held_mib": rss_mib() - before}
    if kind in ("records", "lists") and workers > 0:
        figures["epoch"], figures["epoch_s"] = epoch_memory(held, workers, batch_size, points)
    return figures


def _send(sender: Any, fn: Callable[..., Any], *args: Any) -> None:
    try:
        sender.send(fn(*args))
    except Exception as error:
        sender.send(error)


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a process forked from this one (a fresh "rank"), its result or its exception raised here."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_send, args=(sender, fn, *args))
    process.start()
    sender.close()
    result = receiver.recv()
    process.join()
    if isinstance(result, Exception):
        raise result
    return result


KINDS = {"load_coco": "load_coco() alone", "records": "train split now: records, no COCO index",
         "lists": "layout before: COCO index + per-image lists", "val": "val split now: records + COCO index"}


def run_benchmark(folder: Path, images: int, boxes: int, val_images: int, val_boxes: int, workers: int = 2,
                  batch_size: int = 32, points: int = 12) -> dict[str, dict[str, Any]]:
    """Write the train- and val-sized files in `folder` and measure each kind of rank of `KINDS` in turn. Every
    step runs in its own child: the ranks fork from a process whose heap the writing has not grown."""
    train = in_child(write_coco_scale, folder, images, boxes, "train.json")
    val = in_child(write_coco_scale, folder, val_images, val_boxes, "val.json", 1)
    return {kind: in_child(measure_rank, kind, val if kind == "val" else train, workers, batch_size, points)
            for kind in KINDS}


def cpu_flags() -> str:
    flags = set(next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), []))
    return ", ".join(f"{name} {'yes' if flags & set(keys) else 'no'}" for name, keys in (
        ("avx512f", ["avx512f"]), ("avx512_bf16", ["avx512_bf16"]), ("vnni", ["avx512_vnni", "avx_vnni"]),
        ("amx", ["amx_tile", "amx_bf16"])))


def print_report(figures: dict[str, dict[str, Any]]) -> None:
    print(f"{'rank':<48} {'set-up s':>9} {'RSS at start MiB':>17} {'peak RSS MiB':>13} {'kept MiB':>9}")
    for kind, label in KINDS.items():
        row = figures[kind]
        print(f"{label:<48} {row['setup_s']:9.2f} {row['start_rss_mib']:17.0f} {row['peak_rss_mib']:13.0f} "
              f"{row['held_mib']:9.0f}")
    if "epoch" not in figures["records"]:
        return
    print("\nDataLoader workers' private memory (USS MiB, each worker) over one shuffled epoch:")
    print(f"{'samples seen':>12}  {'layout before (lists)':>24}  {'records now':>24}")
    for (seen, before), (_, now) in zip(figures["lists"]["epoch"], figures["records"]["epoch"]):
        print(f"{seen:12d}  {' '.join(f'{m:7.1f}' for m in before):>24}  {' '.join(f'{m:7.1f}' for m in now):>24}")
    for kind in ("lists", "records"):
        rows = figures[kind]["epoch"]
        growth = [last - first for first, last in zip(rows[0][1], rows[-1][1])]
        print(f"{KINDS[kind]}: epoch {figures[kind]['epoch_s']:.0f} s; worker growth over the epoch "
              + ", ".join(f"{g:+.1f}" for g in growth) + " MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=118287)
    parser.add_argument("--boxes", type=int, default=862000)
    parser.add_argument("--val-images", type=int, default=5000)
    parser.add_argument("--val-boxes", type=int, default=36781)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--points", type=int, default=12, help="memory samples over the epoch")
    args = parser.parse_args()
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {device_name(torch.device('cpu'))}; "
          f"{cpu_flags()}; {os.cpu_count()} cores")
    print(f"train {args.images} images, {args.boxes} boxes; val {args.val_images} images, {args.val_boxes} boxes; "
          f"every file name a link to one {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEG; no segmentations", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        figures = run_benchmark(Path(tmp), args.images, args.boxes, args.val_images, args.val_boxes, args.workers,
                                args.batch_size, args.points)
    print_report(figures)


if __name__ == "__main__":
    main()
