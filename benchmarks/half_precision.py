"""Half precision keeps the boxes right: a detector with COCO's 91 outputs, run in bf16 (torch) and bf16 / int8
(OpenVINO) on video frames, against torch fp32 on the same frames.

    uv run python -m benchmarks.half_precision                       # R50-FPN, 2 frames of vtest.avi, CPU
    uv run python -m benchmarks.half_precision --device cuda --runs torch/fp16 torch/bf16

The weights are random (torch.manual_seed) with class 80's logit raised by 8, saved as a local state_dict: every
detection is of class 80, where torchvision's `batched_nms` moves boxes by 80 x (largest coordinate + 1), ~85,000
at 800x1066, which bf16 cannot hold to a pixel. Per run it prints the same-class pairs overlapping above the NMS IoU
(0 after a working NMS), the match with fp32 (`detect.export.parity.detector_parity`: each box within `--box-px` of one of
the same label, scores within `--score-tol`), for OpenVINO the operations below f32 between the networks and the
outputs (`low_precision_tail`), and model ms per frame as a ratio to fp32 in this same command.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.video import VIDEO
from detect.export.images import source_images
from detect.export.parity import detector_parity, same_class_overlaps
from detect.inference.detector import Detector, model_config
from detect.modeling.model import BACKBONES, build_model
from detect.utils.cpu import cpu_description
from detect.utils.errors import exit_on_error

BIASED_LABEL, BIAS = 80, 8.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=VIDEO, help="a video, folder or glob (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=2, help="frames, spread over the video (default: 2)")
    parser.add_argument("--backbone", default="resnet50", choices=BACKBONES)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (OpenVINO runs are CPU only)")
    parser.add_argument("--runs", nargs="+", default=["torch/bf16", "openvino/bf16", "openvino/int8"],
                        metavar="BACKEND/PRECISION", help="each against torch fp32 (default: %(default)s)")
    parser.add_argument("--calibration-frames", type=int, default=8, help="int8 calibration frames of the source")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--box-px", type=float, default=4.0)
    parser.add_argument("--score-tol", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=None, help="weights and exports (default: a temp folder)")
    return parser.parse_args()


def biased_weights(backbone: str, seed: int, path: Path) -> Path:
    """Random 91-output weights with class 80's logit raised, saved as a plain state_dict."""
    torch.manual_seed(seed)
    model = build_model(model_config(backbone), 91, pretrained_backbone=False)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[BIASED_LABEL] += BIAS
    torch.save(model.state_dict(), path)
    return path


def load(spec: str, weights: Path, args: argparse.Namespace, folder: Path) -> Detector:
    """The Detector of `backend/precision`; OpenVINO int8 calibrated on `--calibration-frames` of the source."""
    backend, precision = spec.split("/")
    common = {"backbone": args.backbone, "score_threshold": args.score_threshold, "threads": None}
    if backend == "openvino" and precision == "int8":
        from detect.export.openvino_export import openvino_model

        cfg = model_config(args.backbone, roi={"score_thresh": args.score_threshold})
        weights = openvino_model(str(weights), cfg, "int8", str(args.source),
                                 calibration_images=args.calibration_frames)
    return Detector.load(weights, backend=backend, precision=precision, **common,
                         device=args.device if backend == "torch" else "cpu")


def openvino_tail(detector: Detector) -> str:
    """The operations below f32 between the networks and the outputs of an OpenVINO run ('none' is right)."""
    import openvino as ov

    from detect.export.openvino_runtime import PRECISION_HINTS, low_precision_tail

    hint = PRECISION_HINTS[detector.backend.precision]
    found = low_precision_tail(ov.Core().compile_model(detector.backend.files[0], "CPU",
                                                       {"INFERENCE_PRECISION_HINT": hint}))
    return ", ".join(found[:3]) + (f" (+{len(found) - 3})" if len(found) > 3 else "") if found else "none"


def run(args: argparse.Namespace) -> None:
    folder = args.output_dir or Path(tempfile.mkdtemp(prefix="half_precision_"))
    folder.mkdir(parents=True, exist_ok=True)
    frames = source_images(args.source, args.frames)
    weights = biased_weights(args.backbone, args.seed, folder / f"{args.backbone}_coco91_class80.pth")
    nms_iou = model_config(args.backbone).roi.nms_thresh
    load_before = os.getloadavg()[0]
    rows, reference, base_ms = [], None, 0.0
    for spec in ["torch/fp32", *args.runs]:
        detector = load(spec, weights, args, folder)
        detector(frames[0])  # warm-up: OpenVINO compiles for the frame size
        results = [detector(frame) for frame in frames]
        outputs = [{"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels),
                    "scores": torch.from_numpy(r.scores)} for r in results]
        ms = sum(r.ms["model"] for r in results) / len(results)
        if reference is None:
            reference, base_ms = outputs, ms
        pairs = sum(same_class_overlaps(o["boxes"], o["labels"], nms_iou) for o in outputs)
        parity = detector_parity(reference, outputs, args.box_px, args.score_tol, args.score_threshold)
        ran = detector.backend.precision
        rows.append(f"| {spec}{'' if spec.endswith(ran) else f' (ran {ran})'} | "
                    f"{sum(len(o['boxes']) for o in outputs)} | {pairs} | "
                    f"{'yes' if parity.ok else 'NO'}: {parity.summary} | "
                    f"{openvino_tail(detector) if spec.startswith('openvino') else 'n/a (torch: float32 boxes)'} | "
                    f"{ms:.0f} | {base_ms / ms:.2f} |")
    print(f"\n{args.backbone}-FPN, 91 outputs (class {BIASED_LABEL} +{BIAS:g}), {len(frames)} frames of {args.source} "
          f"at min 800 / max 1333, score >= {args.score_threshold}, NMS IoU {nms_iou}; {cpu_description()}; "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print(f"| run | detections | same-class pairs > IoU {nms_iou} | matches fp32 (within {args.box_px:g} px, "
          f"scores {args.score_tol:g}) | OpenVINO ops below f32 after the networks | model ms/frame | vs fp32 |")
    print("|---|---:|---:|---|---|---:|---:|")
    print("\n".join(rows))


def main() -> None:
    exit_on_error(run, parse_args())


if __name__ == "__main__":
    main()
