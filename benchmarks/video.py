"""infer.py's pipeline against the naive loop a tutorial writes: same video frames, same weights, FPS and detections.

    uv run python -m benchmarks.video                                  # vtest.avi, R50-FPN at 800x1333, CPU
    uv run python -m benchmarks.video --runs torch/fp32 openvino/bf16 openvino/int8   # each against one naive loop
    uv run python -m benchmarks.video --device cuda:0 --runs torch/fp16 --backbone resnet101

The naive loop reads a frame with cv2, makes a float tensor, calls torchvision's Faster R-CNN (fp32, eager, under
torch.no_grad, as built for its COCO weights: FrozenBatchNorm2d), draws and writes the frame, all in sequence.
Each pipeline run (`--runs backend/precision ...`, all in this one command against the same naive loop) gets the same
random weights (torch.manual_seed) through a state_dict file (infer.py reads it as a user's; openvino converts it,
and calibrates int8 on frames of the video). All run the first `--warmup` frames untimed and are timed on the next
`--frames`; a compile happens in the warm-up and its time is printed. fp32 detections are compared with
`detect.export.parity.detector_parity`: every box of one output has one of the same label within 1 px (each coordinate)
in the other, with a score within 1e-3. Each run's model time is set against the honest peak of its precision
(`detect.bench.measure.peak_tflops`). The first-load check of a reduced precision is off (`precision_check=false`):
random weights score boxes without margin, so int8 and fp32 agree on only ~50 % of them (measured) and the check
would run fp32; the AP of int8 and bf16 is the format table's, on trained weights (`python -m detect.bench formats`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from detect.bench.measure import count_flops, peak_tflops
from detect.config import compose
from detect.export.images import source_images
from detect.export.onnx_export import export_detector, parse_size
from detect.export.parity import detector_parity
from detect.inference.backends import check_backend
from detect.inference.pipeline import infer
from detect.modeling.model import BACKBONES, COCO_CLASSES
from detect.structures import Result
from detect.utils.device import device_name, resolve_device
from detect.utils.drawing import draw_detections
from detect.utils.errors import DetectError

ROOT = Path(__file__).resolve().parents[1]
# a VM hides the cores' boost clock: the bound's clock is one that measured rates prove, a floor of the real one
PAST_BOUND = ("; past the bound: the cores ran faster than the clock that the measured rates prove (the VM hides "
              "its boost clock), so here the bound is a floor of the peak, not the peak")
VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"


def tutorial_model(backbone: str, score_threshold: float, min_size: int = 800, max_size: int = 1333) -> FasterRCNN:
    """torchvision's Faster R-CNN as `fasterrcnn_resnet50_fpn(weights=...)` builds it (any depth, its 800x1333 resize
    unless told otherwise), 91 COCO outputs."""
    return FasterRCNN(resnet_fpn_backbone(backbone_name=backbone, weights=None), num_classes=91,
                      box_score_thresh=score_threshold, min_size=min_size, max_size=max_size).eval()


def naive_loop(model: FasterRCNN, source: Path, frames: int, device: torch.device,
               output: Path) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
    """The tutorial loop over the first `frames` frames; returns each frame's detections and seconds."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise DetectError(f"--source {source}: OpenCV cannot open it; give a video file that exists")
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), capture.get(cv2.CAP_PROP_FPS), size)
    detections, seconds = [], []
    for _ in range(frames):
        start = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        image = torch.from_numpy(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            result = model([image.to(device)])[0]
        result = {key: value.cpu() for key, value in result.items()}
        draw_detections(frame, result["boxes"].numpy(), result["labels"].tolist(), result["scores"].tolist(),
                        COCO_CLASSES.names)
        writer.write(frame)
        seconds.append(time.perf_counter() - start)
        detections.append(result)
    writer.release()
    capture.release()
    return detections, seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=VIDEO, help="a video file (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=10, help="timed frames, after the warm-up (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames first, for both (default: 2)")
    parser.add_argument("--backbone", default="resnet50", choices=BACKBONES)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--runs", nargs="+", default=["torch/fp32"], metavar="BACKEND/PRECISION",
                        help="pipelines to time against the naive loop, e.g. torch/fp32 onnxruntime/fp32 openvino/bf16 "
                             "openvino/int8 (default: torch/fp32); not fp32: detections are not expected to match")
    parser.add_argument("--calibration-frames", type=int, default=32,
                        help="openvino int8: frames of the source to calibrate on (default: 32)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch runs: torch.compile the backbone and RPN head (default: on)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--size", default="800x1333", help="the resize of both models: short side x long side limit "
                        "(default: %(default)s, torchvision's)")
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="both models' box score threshold; random weights score well above 0.05")
    parser.add_argument("--peak-matmul", type=int, default=2048,
                        help="side of the square matmul whose speed is each precision's peak (default: 2048)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path,
                        default=Path("outputs") / "bench" / f"video_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except DetectError as error:
        sys.exit(f"error: {error}")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[dict[str, torch.Tensor]]]]:
    """Both loops, then the report (printed and written to bench.json); returns it with each run's detections
    (the naive loop's under "naive")."""
    device = resolve_device(args.device)
    total = args.warmup + args.frames
    args.output_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    naive = tutorial_model(args.backbone, args.score_threshold, *parse_size(args.size)).to(device)
    weights = args.output_dir / f"random_{args.backbone}_seed{args.seed}.pth"
    torch.save(naive.state_dict(), weights)

    print(f"naive loop: {total} frames ...", flush=True)
    naive_detections, naive_seconds = naive_loop(naive, args.source, total, device, args.output_dir / "naive.mp4")
    first_image = torch.rand(3, 720, 1280, device=device)
    with torch.no_grad():
        gflop = count_flops(partial(naive, [first_image])) / 1e9
    del naive, first_image  # out of the pipeline's VRAM peak
    if device.type == "cuda":
        torch.cuda.empty_cache()

    timed = naive_seconds[args.warmup:]
    naive_fps = len(timed) / sum(timed)
    naive_all_fps = len(naive_seconds) / sum(naive_seconds)
    lines = [f"{args.source.name}: frames {args.warmup}..{total - 1} timed ({args.frames} after {args.warmup} untimed "
             f"warm-up), {device_name(device)}",
             f"model {args.backbone}-FPN, random weights (seed {args.seed}), box score >= {args.score_threshold}; "
             f"{gflop:.0f} GFLOP a frame (convolutions and matmuls, counted as direct)",
             f"naive loop            {naive_fps:7.3f} FPS {1000 / naive_fps:8.1f} ms/frame  (cv2 -> tensor -> fp32 "
             "eager -> draw -> write, sequential)"]
    runs, detections = [], {"naive": naive_detections}
    for spec in args.runs:
        print(f"infer.py pipeline {spec}: {total} frames ...", flush=True)
        run_report, detections[spec] = pipeline_run(args, spec, weights, naive_detections, gflop)
        run_report |= {"ratio": run_report["fps"] / naive_fps,
                       "ratio_with_warmup": run_report["all_fps"] / naive_all_fps}
        runs.append(run_report)
        ran = "" if run_report["precision_run"] == spec.partition("/")[2] else f" (ran {run_report['precision_run']})"
        lines += [f"{spec + ran:<21} {run_report['fps']:7.3f} FPS {1000 / run_report['fps']:8.1f} ms/frame  "
                  f"{run_report['ratio']:.2f}x the naive loop ({run_report['ratio_with_warmup']:.2f}x with warm-up "
                  f"and compile counted)",
                  f"{'':<21} model p50 {run_report['model_p50_ms']:.0f} ms (first frame {run_report['first_model_ms']:.0f} "
                  f"ms) = {run_report['gflops']:.0f} GFLOP/s, {run_report['peak_share']:.1%} of {run_report['peak']}"
                  + (PAST_BOUND if run_report["peak_share"] > 1.0 else ""),
                  f"{'':<21} parity {run_report['parity']}"]
        if device.type == "cuda":
            lines.append(f"{'':<21} peak VRAM {run_report['vram_mb'][0]:.0f} MiB allocated, "
                         f"{run_report['vram_mb'][1]:.0f} MiB reserved (after warm-up)")
    report = "\n".join(lines)
    print(report)
    figures = {"naive_fps": naive_fps, "naive_fps_with_warmup": naive_all_fps, "runs": runs, "gflop_per_frame": gflop,
               "args": {k: str(v) for k, v in vars(args).items()}, "report": report}
    (args.output_dir / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures, detections


def pipeline_run(args: argparse.Namespace, spec: str, weights: Path, naive_detections: list[dict[str, torch.Tensor]],
                 gflop: float) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]]]:
    """infer.py's pipeline as `spec` (backend/precision) over the same frames: FPS, per-stage statistics, model time
    against the peak of its precision, and (fp32) parity with the naive loop's detections; and its detections."""
    backend, _, precision = spec.partition("/")
    total = args.warmup + args.frames
    cfg = compose("infer", [
            f"source={args.source}", f"weights={weights}", f"model/backbone={args.backbone}", f"backend={backend}",
            f"score_threshold={args.score_threshold}", f"device={args.device}", f"precision={precision}",
            "model.min_size={}".format(parse_size(args.size)[0]), "model.max_size={}".format(parse_size(args.size)[1]),
            f"channels_last={args.channels_last}", f"compile={args.compile and backend == 'torch'}",
            f"warmup_frames={args.warmup}", f"max_frames={total}", "progress=false", "precision_check=false",
            f"output_dir={args.output_dir / spec.replace('/', '_')}"])
    check_backend(backend, str(weights), precision)
    if backend == "onnxruntime":
        cfg.weights = str(export_detector(str(weights), cfg.model, args.output_dir / "model.onnx")[0])
    if backend == "openvino" and precision == "int8":
        calibration = args.output_dir / "calibration"  # frames of the source: the model sees this kind of image
        for index, image in enumerate(source_images(args.source, args.calibration_frames)):
            calibration.mkdir(exist_ok=True)
            cv2.imwrite(str(calibration / f"{index:04d}.png"), image)
        cfg.calibration = str(calibration)
    results: list[Result] = []  # the stream's results, kept in memory as the writer thread hands them on
    summary = infer(cfg, consumer=lambda result, warmup: results.append(result))
    detections = [{"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels),
                   "scores": torch.from_numpy(r.scores)} for r in results]
    parity = detector_parity(naive_detections, detections, box_px=1.0, score_tol=1e-3,
                             score_thresh=args.score_threshold)
    model_p50_ms = summary["stages_ms"]["model"]["p50"]
    ran = summary["precision"]  # what ran: an int8 IR whose first-load check failed here runs fp32
    peak, peak_source = peak_tflops(resolve_device(args.device), ran, args.peak_matmul)
    gflops = gflop / model_p50_ms * 1000.0
    return {"spec": spec, "fps": summary["throughput_fps"], "stages_ms": summary["stages_ms"], "all_fps": summary["frames"] / summary["total_wall_s"],
            "model_p50_ms": model_p50_ms, "first_model_ms": (summary["warmup_model_ms"] or [float("nan")])[0],
            "gflops": gflops, "peak_gflops": peak * 1000.0, "peak_share": gflops / (peak * 1000.0),
            "peak": f"the {ran} peak {peak * 1000:.0f} GFLOP/s ({peak_source})", "precision_run": ran,
            "parity_ok": parity.ok, "model": summary["model"],
            "vram_mb": (summary.get("peak_vram_allocated_mb"), summary.get("peak_vram_reserved_mb")),
            "parity": ("ok: " if parity.ok else "FAILED: ") + parity.summary + (
                "" if any(len(d["scores"]) for d in naive_detections) else "; no detections: lower --score-threshold")
            if precision == "fp32"
            else f"not compared ({precision} is not expected to match fp32 box for box)"}, detections


if __name__ == "__main__":
    main()
