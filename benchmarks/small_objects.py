"""Small objects in 1080p frames (issue 27): AP, AP_small and ms a frame of the plain run, slicing, TTA and both.

A small detector (ResNet-18-FPN from scratch, 32 FPN channels: what trains in minutes on two CPU cores) is trained
once on 128 px crops whose shapes are 8-40 px, at 1:1 (min_size 128); it then runs on synthetic 1920x1080 frames of
the same shapes: plainly (the frame resized to its short side of 128: the shapes become 1-5 px), sliced (128 px
slices: 1:1 again, plus the whole frame), with TTA (flip, short sides 128 and 1080: the whole frame at 1:1 too) and
sliced with flip. Torch fp32 on the CPU (--runs: OpenVINO int8 too); ms a frame is
the Detector's stages (preprocess, slice, model, postprocess) after a warm-up frame, as infer.py's frames.csv.

    uv run python -m benchmarks.small_objects [--frames 10] [--steps 600] [--out outputs/benchmarks/small_objects]
    uv run python -m benchmarks.small_objects --runs torch/fp32 openvino/int8
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import OmegaConf
from pycocotools.coco import COCO

from detect import Detector
from detect.config import compose
from detect.data.synthetic import CATEGORIES, write_split
from detect.engine.training import run
from detect.evaluation.coco import evaluate_coco
from detect.structures import Classes, to_coco_results
from detect.utils.cache import cached_folder
from detect.utils.cpu import cpu_description
from detect.utils.errors import DetectError

OBJECT_SIZES = (8, 40)
CROP = 128  # training crops and slices, in pixels
MODES: dict[str, dict[str, Any]] = {
    "plain": {},
    "slicing": {"slice": {"size": [CROP, CROP]}},
    "tta": {"tta": {"flip": True, "sizes": [CROP, 1080]}},
    "slicing + flip": {"slice": {"size": [CROP, CROP]}, "tta": {"flip": True}},
}
# 1:1 on the crops; max_size 228 keeps a 16:9 frame whole at short side 128; a head small enough for 2 CPU cores
MODEL = [f"model.min_size={CROP}", "model.max_size=228", "model.anchor_sizes=[8,16,32,64,128]",
         "model.backbone.fpn_channels=32", "model.roi.representation_size=64", "model.rpn.post_nms_top_n_test=100",
         "model.roi.detections_per_img=200"]


def write_frames(cache_dir: Path | None, count: int, size: tuple[int, int] = (1080, 1920),
                 object_sizes: tuple[int, int] = OBJECT_SIZES, max_objects: int = 40, seed: int = 1) -> Path:
    """`count` HxW frames of the demo's shapes (cached): their COCO json, the images in a folder beside it."""
    params = {"count": count, "size": list(size), "object_sizes": list(object_sizes), "max_objects": max_objects,
              "seed": seed}

    def write(folder: Path) -> None:
        write_split(folder, "frames", np.random.default_rng(seed), count, (0, 0), max_objects, object_sizes,
                    CATEGORIES, frame_size=(size[1], size[0]))

    return cached_folder(cache_dir, "small_objects", params, "frames.json", write) / "frames.json"


def train(output_dir: Path, cache_dir: Path | None, steps: int) -> Path:
    """The small detector trained on 128 px crops with 8-40 px shapes (once: best.ckpt is reused)."""
    checkpoint = output_dir / "checkpoints" / "best.ckpt"
    cfg = compose("train", [
        f"data.cache_dir={cache_dir}" if cache_dir else "data.cache_dir=null", f"data.image_size=[{CROP},{CROP}]",
        f"data.object_sizes=[{OBJECT_SIZES[0]},{OBJECT_SIZES[1]}]", "data.max_objects=6", "data.num_train=2000",
        "data.num_val=40", *MODEL, f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
        f"scheduler.milestones=[{int(steps * 0.8)}]", "trainer.accelerator=cpu", "plots=false",
        "callbacks.progress_bar.refresh_rate=0"], output_dir)
    (output_dir / ".hydra").mkdir(parents=True, exist_ok=True)  # as train.py leaves a run: int8 calibrates on its
    OmegaConf.save(cfg, output_dir / ".hydra" / "config.yaml")  # train images (the crops), not the 1080p frames
    if not checkpoint.is_file():
        run(cfg)
    return checkpoint


def evaluate_modes(weights: Path, frames_json: Path, modes: Mapping[str, Mapping[str, Any]],
                   score_threshold: float = 0.05, threads: int | None = None,
                   runtime: str = "torch/fp32") -> list[dict[str, Any]]:
    """Per mode: AP, AP50, AP_small and mean ms a frame (the first frame run twice: its first run warms up), with
    `runtime`'s backend and precision ("openvino/int8"); a mode the backend refuses is a row with the reason."""
    backend, precision = runtime.split("/")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(frames_json))
    images = [(info["id"], frames_json.parent / "frames" / info["file_name"]) for info in coco.dataset["images"]]
    rows = []
    for name, settings in modes.items():
        try:
            detector = Detector.load(weights, score_threshold=score_threshold, threads=threads, backend=backend,
                                     precision=precision, **settings)
        except DetectError as error:
            rows.append({"runtime": runtime, "mode": name, "refused": str(error)})
            continue
        classes: Classes = detector.backend.classes
        detector(cv2.imread(str(images[0][1])))
        results, ms = [], []
        for image_id, path in images:
            result = detector(cv2.imread(str(path)))
            ms.append(sum(value for stage, value in result.ms.items() if stage != "decode"))
            output = {"boxes": result.boxes, "labels": result.labels, "scores": result.scores}
            results += to_coco_results([output], [image_id], classes.category_ids)
        with contextlib.redirect_stdout(io.StringIO()):
            stats = evaluate_coco(coco, results, classes).stats
        rows.append({"runtime": runtime, "mode": name, "AP": stats["AP"], "AP50": stats["AP50"],
                     "AP_small": stats["APs"], "ms_per_frame": float(np.mean(ms)), "detections": len(results)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'runtime':<15}{'mode':<16}{'AP':>7}{'AP50':>7}{'AP_small':>10}{'ms/frame':>10}"]
    for row in rows:
        figures = f"  refused: {row['refused']}" if "refused" in row else \
            f"{row['AP']:>7.3f}{row['AP50']:>7.3f}{row['AP_small']:>10.3f}{row['ms_per_frame']:>10.0f}"
        lines.append(f"{row['runtime']:<15}{row['mode']:<16}{figures}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="1920x1080 frames to evaluate on")
    parser.add_argument("--steps", type=int, default=400, help="training steps (batch 8) of the crop detector")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/small_objects"))
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the synthetic data goes (DETECT_CACHE)")
    parser.add_argument("--runs", nargs="+", default=["torch/fp32"], metavar="BACKEND/PRECISION",
                        help="backends and precisions to run every mode with, e.g. torch/fp32 openvino/int8")
    args = parser.parse_args()
    weights = train(args.out / "train", args.cache_dir, args.steps)
    frames = write_frames(args.cache_dir, args.frames)
    rows = [row for runtime in args.runs for row in evaluate_modes(weights, frames, MODES, runtime=runtime)]
    report = {"cpu": cpu_description(), "frames": args.frames, "steps": args.steps, "rows": rows}
    (args.out / "small_objects.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cpu_description()}\n{table(rows)}")


if __name__ == "__main__":
    main()
