"""infer.py's pipeline against the naive loop a tutorial writes: same video frames, same weights, FPS and detections.

    uv run python -m detect.bench.video                                  # vtest.avi, R50-FPN at 800x1333, CPU
    uv run python -m detect.bench.video --frames 20 --no-compile
    uv run python -m detect.bench.video --device cuda:0 --precision fp16 --backbone resnet101

The naive loop reads a frame with cv2, makes a float tensor, calls torchvision's Faster R-CNN (fp32, eager, under
torch.no_grad, as built for its COCO weights: FrozenBatchNorm2d), draws and writes the frame, all in sequence.
Both get the same random weights (torch.manual_seed) through a state_dict file (infer.py reads it as a user's).
Both run the first `--warmup` frames untimed and are timed on the next `--frames`; the pipeline's compile happens
in its warm-up and its time is printed. Detections are compared with `detect.export.detector_parity`: every box
of one output has one of the same label within 1 px (each coordinate) in the other, with a score within 1e-3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from detect.bench.measure import count_flops, matmul_tflops
from detect.config import CONFIG_DIR
from detect.device import resolve_device
from detect.errors import DetectError
from detect.export import detector_parity
from detect.inference.pipeline import infer
from detect.inference.result import Result
from detect.model import BACKBONES, COCO_CLASSES
from detect.visualize import draw_detections

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"


def tutorial_model(backbone: str, score_threshold: float) -> FasterRCNN:
    """torchvision's Faster R-CNN as `fasterrcnn_resnet50_fpn(weights=...)` builds it (any depth), 91 COCO outputs."""
    return FasterRCNN(resnet_fpn_backbone(backbone_name=backbone, weights=None), num_classes=91,
                      box_score_thresh=score_threshold).eval()


def naive_loop(model: FasterRCNN, source: Path, frames: int, device: torch.device,
               output: Path) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
    """The tutorial loop over the first `frames` frames; returns each frame's detections and seconds."""
    capture = cv2.VideoCapture(str(source))
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=VIDEO, help="a video file (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=10, help="timed frames, after the warm-up (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames first, for both (default: 2)")
    parser.add_argument("--backbone", default="resnet50", choices=BACKBONES)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                        help="the pipeline's (the naive loop is fp32); not fp32: detections are not expected to match")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile the pipeline's backbone and RPN head (default: on)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="both models' box score threshold; random weights score well above 0.05")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path,
                        default=Path("outputs") / "bench" / f"video_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except DetectError as error:
        sys.exit(f"error: {error}")


def run(args: argparse.Namespace) -> None:
    """Both loops, then the report (printed and written to bench.json)."""
    device = resolve_device(args.device)
    total = args.warmup + args.frames
    args.output_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    naive = tutorial_model(args.backbone, args.score_threshold).to(device)
    weights = args.output_dir / f"random_{args.backbone}_seed{args.seed}.pth"
    torch.save(naive.state_dict(), weights)

    print(f"naive loop: {total} frames ...", flush=True)
    naive_detections, naive_seconds = naive_loop(naive, args.source, total, device, args.output_dir / "naive.mp4")
    first_image = torch.rand(3, 720, 1280, device=device)
    with torch.no_grad():
        gflop = count_flops(partial(naive, [first_image])) / 1e9
    peak = max(matmul_tflops(device, torch.float32, 2048) for _ in range(3)) * 1000.0  # best of 3: a shared CPU
    del naive, first_image  # out of the pipeline's VRAM peak
    if device.type == "cuda":
        torch.cuda.empty_cache()

    print(f"infer.py pipeline: {total} frames ...", flush=True)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="infer", overrides=[
            f"source={args.source}", f"weights={weights}", f"model/backbone={args.backbone}",
            f"score_threshold={args.score_threshold}", f"device={args.device}", f"precision={args.precision}",
            f"channels_last={args.channels_last}", f"compile={args.compile}", f"warmup_frames={args.warmup}",
            f"max_frames={total}", "progress=false", f"output_dir={args.output_dir / 'pipeline'}"])
    pipeline_results: list[Result] = []  # the stream's results, kept in memory as the writer thread hands them on
    summary = infer(cfg, consumer=lambda result, warmup: pipeline_results.append(result))
    pipeline_detections = [{"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels),
                            "scores": torch.from_numpy(r.scores)} for r in pipeline_results]

    timed = naive_seconds[args.warmup:]
    naive_fps = len(timed) / sum(timed)
    pipeline_fps = summary["throughput_fps"]
    naive_all_fps = len(naive_seconds) / sum(naive_seconds)
    pipeline_all_fps = summary["frames"] / summary["total_wall_s"]
    parity = detector_parity(naive_detections, pipeline_detections, box_px=1.0, score_tol=1e-3,
                             score_thresh=args.score_threshold)
    detect_ms = [r.ms["preprocess"] + r.ms["model"] + r.ms["postprocess"] for r in pipeline_results[args.warmup:]]
    steady_model_ms = summary["stages_ms"]["model"]["p50"]
    first_model_ms = summary["warmup_model_ms"][0] if summary["warmup_model_ms"] else float("nan")
    floor_ms = gflop / peak * 1000.0

    options = ", ".join(["threaded decode and write", "batch norms folded"]
                        + ["channels_last"] * args.channels_last + ["torch.compile"] * args.compile)
    lines = [
        f"{args.source.name}: frames {args.warmup}..{total - 1} timed ({args.frames} after {args.warmup} untimed "
        f"warm-up), {summary['device']}",
        f"model {args.backbone}-FPN, random weights (seed {args.seed}), network input "
        f"{'x'.join(map(str, summary['network_input_size']))}, box score >= {args.score_threshold}",
        f"naive loop   {naive_fps:7.3f} FPS {1000 / naive_fps:9.1f} ms/frame  (cv2 -> tensor -> fp32 eager -> draw -> "
        f"write, sequential)",
        f"infer.py     {pipeline_fps:7.3f} FPS {1000 / pipeline_fps:9.1f} ms/frame  ({args.precision}, {options})",
        f"ratio        {pipeline_fps / naive_fps:.2f}x end to end (warm-up and compile counted too: "
        f"{pipeline_all_fps / naive_all_fps:.2f}x)",
        f"detect       p50 {np.median(detect_ms):.1f} ms preprocess+model+postprocess; model first frame "
        f"{first_model_ms / 1000:.1f} s, then p50 {steady_model_ms / 1000:.2f} s"
        + (f" (compile ~{(first_model_ms - steady_model_ms) / 1000:.0f} s, in the warm-up)" if args.compile else ""),
        f"parity       {'ok' if parity.ok else 'FAILED'}: {parity.summary}"
        + ("" if args.precision == "fp32" else f" ({args.precision}: not expected to match fp32)")
        + ("" if any(len(d["scores"]) for d in naive_detections) else "; no detections: lower --score-threshold"),
        f"compute      {gflop:.0f} GFLOP a frame (convolutions and matmuls); fp32 matmul peak here now "
        f"{peak:.0f} GFLOP/s: a model call at that speed takes {floor_ms:.0f} ms, "
        f"{1000 / naive_fps / floor_ms:.2f}x the naive loop's frame time",
    ]
    if device.type == "cuda":
        lines.append(f"GPU          peak VRAM {summary['peak_vram_allocated_mb']:.0f} MiB allocated, "
                     f"{summary['peak_vram_reserved_mb']:.0f} MiB reserved (after warm-up)")
    report = "\n".join(lines)
    print(report)
    (args.output_dir / "bench.json").write_text(json.dumps({
        "naive_fps": naive_fps, "pipeline_fps": pipeline_fps, "ratio": pipeline_fps / naive_fps,
        "ratio_with_warmup": pipeline_all_fps / naive_all_fps, "parity_ok": parity.ok, "parity": parity.summary,
        "detect_p50_ms": float(np.median(detect_ms)), "first_model_ms": first_model_ms,
        "steady_model_p50_ms": steady_model_ms, "gflop_per_frame": gflop, "matmul_peak_gflops": peak,
        "args": {k: str(v) for k, v in vars(args).items()}, "report": report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
