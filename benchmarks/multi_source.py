"""Several sources in one process against the same sources run one after another, as infer.py runs them.

    uv run python -m benchmarks.multi_source                       # vtest.avi as N = 1, 2, 4 sources, ResNet-18-FPN
    uv run python -m benchmarks.multi_source --counts 1 2 4 8 --frames 40 --backbone resnet50 --device cuda

For each N the same video is given N times: (a) one infer.py run with source=[video x N] (one model, one frame per
source in each model call), (b) the same with batch=false (one model call a frame: what batching adds), and (c) N
infer.py runs one after another. All use one loaded model (random weights, seeded; model loading is left out of
every side), `--warmup` untimed frames then `--frames` timed frames per source. Throughput: timed frames of all
sources over the timed wall time (in (c): summed over the runs); latency: the median end-to-end time of a frame
(decode to written), the mean over the sources.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.video import VIDEO
from detect.config import compose
from detect.inference.pipeline import infer, load_detector
from detect.modeling.model import BACKBONES
from detect.utils.errors import exit_on_error

# A head that leaves the backbone most of the time, as in the tests: FPN 32 channels, 100 proposals, ROI MLP 64.
SMALL_HEAD = ["model.backbone.fpn_channels=32", "model.rpn.pre_nms_top_n_test=300", "model.rpn.post_nms_top_n_test=100",
              "model.roi.representation_size=64"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=VIDEO, help="a video file (default: %(default)s)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4], help="numbers of sources (default: 1 2 4)")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per source (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames per source first (default: 2)")
    parser.add_argument("--backbone", default="resnet18", choices=BACKBONES)
    parser.add_argument("--min-size", type=int, default=320, help="the network's short side (default: 320)")
    parser.add_argument("--max-size", type=int, default=512, help="the network's long side at most (default: 512)")
    parser.add_argument("--model", nargs="*", default=SMALL_HEAD, metavar="KEY=VALUE",
                        help="more infer.yaml model overrides (default: a small head, %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output-dir", type=Path,
                        default=Path("outputs") / "bench" / f"sources_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return parser.parse_args()


def config(args: argparse.Namespace, sources: list[str], batch: bool, output_dir: Path) -> Any:
    """infer.yaml with the benchmark's model and frames."""
    return compose("infer", [
            f"source=[{','.join(sources)}]", f"model/backbone={args.backbone}", f"model.min_size={args.min_size}",
            f"model.max_size={args.max_size}", f"device={args.device}", f"warmup_frames={args.warmup}",
            f"max_frames={args.warmup + args.frames}", f"batch={batch}", "progress=false",
            f"threads={args.threads if args.threads else 'null'}", f"output_dir={output_dir}", *args.model])


def figures(rows: list[dict[str, Any]], wall_s: float) -> dict[str, float]:
    """Throughput (timed frames of all sources a second) and the mean of the sources' median end-to-end ms."""
    return {"fps": sum(row["measured_frames"] for row in rows) / wall_s,
            "latency_ms": statistics.mean(row["stages_ms"]["end_to_end"]["p50"] for row in rows)}


def measure(args: argparse.Namespace, count: int, detector: Any) -> dict[str, dict[str, float]]:
    """(a) one run of `count` sources, batched, (b) the same unbatched, (c) `count` runs one after another."""
    sources, folder = [str(args.source)] * count, args.output_dir / f"n{count}"
    report = {}
    for name, batch in (("one process", True), ("one process, batch=false", False)):
        detector.batch = batch
        summary = infer(config(args, sources, batch, folder / ("batched" if batch else "unbatched")), detector)
        rows = summary["sources"] if "sources" in summary else [summary]
        report[name] = figures(rows, max(row["measured_wall_s"] for row in rows))
    detector.batch = True
    rows = [infer(config(args, [str(args.source)], True, folder / f"sequential{index}"), detector)
            for index in range(count)]
    report["one after another"] = figures(rows, sum(row["measured_wall_s"] for row in rows))
    return report


def run(args: argparse.Namespace) -> None:
    args.output_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    detector = load_detector(config(args, [str(args.source)], True, args.output_dir))
    results = {count: measure(args, count, detector) for count in args.counts}
    load_after = os.getloadavg()
    threads = args.threads or torch.get_num_threads()
    lines = [f"{args.source.name} x N, {args.warmup} + {args.frames} frames per source; {detector.backend.description} "
             f"at {args.min_size}-{args.max_size} px {' '.join(args.model)}, {args.device}, torch threads {threads}",
             f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)",
             f"{'N':>3}  {'run':<26}{'FPS (all)':>10}{'x one after another':>21}{'latency p50 ms':>16}"]
    for count, report in results.items():
        baseline = report["one after another"]["fps"]
        for name, figure in report.items():
            lines.append(f"{count:>3}  {name:<26}{figure['fps']:>10.2f}{figure['fps'] / baseline:>21.2f}"
                         f"{figure['latency_ms']:>16.0f}")
    text = "\n".join(lines)
    print(text)
    (args.output_dir / "bench.json").write_text(json.dumps(
        {"results": results, "load_before": load_before, "load_after": load_after, "report": text,
         "args": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")


def main() -> None:
    exit_on_error(run, parse_args())


if __name__ == "__main__":
    main()
