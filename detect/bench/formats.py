"""`python -m detect.bench formats weights=<checkpoint>`: every backend x precision of a trained checkpoint on its val
split (configs/formats.yaml) - AP and AP50 by pycocotools, the AP lost against torch fp32 (the accuracy gate), model
latency per image, FPS, speed-up and file size. Writes formats.csv, formats.md and formats.png (AP vs ms, the
Pareto front marked) to the run folder.

Each format runs the same images one at a time through `Detector` (the path infer.py takes), warmed up first on
the first val image; latency is the backend call (`Result.ms["model"]`), FPS counts preprocess, model and
postprocess of every image. A format `backend/precision/N` runs the checkpoint with its classes moved to the last of
N outputs (`detect.bench.many_classes`): the same detections under labels near N, where a box decoding or NMS in half
precision loses boxes (a 3-class checkpoint alone would not show it). A precision the CPU lacks says so in the
status: OpenVINO bf16 without AVX-512 BF16 or AMX what ran instead of "passed", torch bf16 / fp16 that it ran slower
than fp32 (`detect.utils.cpu.lacks_fast_units`).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import cv2
from omegaconf import DictConfig

from detect.bench.many_classes import many_class_checkpoint
from detect.data.coco import index_coco, read_checked
from detect.evaluation.coco import evaluate_coco
from detect.export.images import run_datamodule, run_split
from detect.inference.backends import check_backend
from detect.inference.detector import Detector
from detect.structures import to_coco_results
from detect.utils.cpu import cpu_description
from detect.utils.errors import DetectError, first_line
from detect.utils.plotting import plt, save_figure
from detect.utils.timing import summarize

COLUMNS = ["format", "precision", "outputs", "status", "size_mib", "AP", "AP50", "delta_AP_points", "p50_ms",
           "p90_ms", "fps", "speedup", "reason"]
BASELINE = ("torch", "fp32")


def weights_for(outputs: int | None, cfg: DictConfig, output_dir: Path) -> str:
    """The checkpoint, or with `outputs` its many-class copy (`many_class_checkpoint`, written once)."""
    if outputs is None:
        return cfg.weights
    path = output_dir / f"outputs{outputs}.ckpt"
    if not path.is_file():
        many_class_checkpoint(cfg.weights, outputs, path)
    return str(path)


def parse_format(spec: str) -> tuple[str, str, int | None]:
    """(backend, precision, outputs or None) of `backend/precision` or `backend/precision/N`."""
    parts = str(spec).split("/")
    if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()):
        raise DetectError(f"formats: {spec!r} is not backend/precision or backend/precision/<outputs>, e.g. "
                          "torch/bf16 or torch/bf16/91")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None


def evaluate_format(detector: Detector, images: list[dict[str, Any]], image_dir: Path,
                    warmup: int) -> tuple[list[dict], list[float], float]:
    """(COCO results, model ms per image, images per second end to end) over the val images."""
    first = cv2.imread(str(image_dir / images[0]["file_name"]), cv2.IMREAD_COLOR)
    for _ in range(warmup):
        detector(first)
    outputs, model_ms, busy_s = [], [], 0.0
    for entry in images:
        pixels = cv2.imread(str(image_dir / entry["file_name"]), cv2.IMREAD_COLOR)
        if pixels is None:
            raise DetectError(f"val image {image_dir / entry['file_name']} could not be read")
        result = detector(pixels)
        outputs.append({"boxes": result.boxes, "labels": result.labels, "scores": result.scores})
        model_ms.append(result.ms["model"])
        busy_s += (result.ms["preprocess"] + result.ms["model"] + result.ms["postprocess"]) / 1000.0
    category_ids = detector.backend.classes.category_ids
    return to_coco_results(outputs, [entry["id"] for entry in images], category_ids), model_ms, len(images) / busy_s


def val_split(cfg: DictConfig) -> tuple[Any, Path, list[dict[str, Any]]]:
    """(COCO index, image folder, its first `cfg.max_images` image entries by id) of `cfg.val_json` and
    `cfg.val_images`, or of the checkpoint's val split when they are null."""
    dataset, image_dir = ((read_checked(cfg.val_json)[0], Path(cfg.val_images)) if cfg.val_json
                          else run_split(cfg.weights, "val"))
    coco = index_coco(dataset)
    images = sorted(coco.imgs.values(), key=lambda entry: entry["id"])[:cfg.max_images or None]
    return coco, image_dir, images


def run_format(backend: str, precision: str, outputs: int | None, cfg: DictConfig, coco: Any, image_dir: Path,
               images: list[dict[str, Any]], output_dir: Path) -> dict[str, Any]:
    """One row of the table: measured, or failed with the reason."""
    row: dict[str, Any] = {"format": backend, "precision": precision, "outputs": outputs}
    try:
        check_backend(backend, None, precision)  # before any export for it
        # a many-class copy lives outside the run: int8 calibrates on the run's training images
        calibration = cfg.calibration or (str(run_datamodule(cfg.weights).image_dir("train")) if outputs else None)
        detector = Detector.load(weights_for(outputs, cfg, output_dir), backend=backend, precision=precision,
                                 score_threshold=cfg.score_threshold, threads=cfg.threads, calibration=calibration)
        results, model_ms, fps = evaluate_format(detector, images, image_dir, cfg.warmup)
    except Exception as error:  # a format that cannot load or run is a row of the table, not the end of it
        return row | {"status": "failed", "reason": first_line(error)}
    evaluation = evaluate_coco(coco, results, detector.backend.classes, [entry["id"] for entry in images])
    timing = summarize(model_ms)
    return row | {"status": "measured", "size_mib": sum(f.stat().st_size for f in detector.backend.files) / 2**20,
                  "ran": detector.backend.precision, "slow": detector.backend.slow,
                  "AP": evaluation.stats["AP"], "AP50": evaluation.stats["AP50"], "p50_ms": timing["p50"],
                  "p90_ms": timing["p90"], "fps": fps, "reason": ""}


def judge(rows: list[dict[str, Any]], gate_points: float) -> None:
    """ΔAP and speed-up against torch fp32, and the gate: passed, or exported but the accuracy gate failed."""
    base = next((r for r in rows if (r["format"], r["precision"]) == BASELINE and r["outputs"] is None
                 and r["status"] == "measured"), None)
    if base is None:
        raise DetectError("torch fp32 failed, so nothing can be compared: " + rows[0].get("reason", ""))
    for row in rows:
        if row["status"] != "measured":
            continue
        row["delta_AP_points"] = (row["AP"] - base["AP"]) * 100.0
        row["speedup"] = base["p50_ms"] / row["p50_ms"]
        passed = row["delta_AP_points"] >= -gate_points
        row["status"] = "passed" if passed else "exported, accuracy gate failed"
        if passed and row["ran"] != row["precision"]:
            row["status"] = f"ran {row['ran']}: this CPU has no {row['precision']}"
        elif row.get("slow"):
            row["status"] += f"; slower than fp32: {row['slow']} (try fp32 or openvino)"


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row beats on both latency and AP, fastest first."""
    measured = sorted((r for r in rows if "AP" in r), key=lambda r: (r["p50_ms"], -r["AP"]))
    front, best_ap = [], -1.0
    for row in measured:
        if row["AP"] > best_ap:
            front.append(row)
            best_ap = row["AP"]
    return front


def write_table(rows: list[dict[str, Any]], header: str, output_dir: Path) -> str:
    """formats.csv and formats.md; returns the markdown."""
    with (output_dir / "formats.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows({key: row.get(key, "") for key in COLUMNS} for row in rows)

    def cell(row: dict[str, Any], key: str, digits: int) -> str:
        value = row.get(key)
        return "" if value is None else f"{value:.{digits}f}"

    lines = [header, "", "| format | precision | outputs | status | size MiB | AP | AP50 | ΔAP (points) | p50 ms | "
             "p90 ms | FPS | speed-up |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        status = row["status"] + (f": {row['reason']}" if row.get("reason") else "")
        lines.append(f"| {row['format']} | {row['precision']} | {row.get('outputs') or ''} | {status} | "
                     f"{cell(row, 'size_mib', 1)} | "
                     f"{cell(row, 'AP', 3)} | {cell(row, 'AP50', 3)} | {cell(row, 'delta_AP_points', 2)} | "
                     f"{cell(row, 'p50_ms', 1)} | {cell(row, 'p90_ms', 1)} | {cell(row, 'fps', 1)} | "
                     f"{cell(row, 'speedup', 2)} |")
    markdown = "\n".join(lines) + "\n"
    (output_dir / "formats.md").write_text(markdown)
    return markdown


def plot_formats(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """AP against model ms per image, one point per measured format, the Pareto front joined."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in (r for r in rows if "AP" in r):
        marker = "o" if row["status"] == "passed" else "x"
        axes.scatter(row["p50_ms"], row["AP"], marker=marker, s=40)
        label = f"{row['format']} {row['precision']}" + (f" /{row['outputs']}" if row["outputs"] else "")
        axes.annotate(label, (row["p50_ms"], row["AP"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    front = pareto_front(rows)
    axes.plot([r["p50_ms"] for r in front], [r["AP"] for r in front], "--", color="gray", label="Pareto front")
    axes.set(xlabel="model latency p50 (ms per image)", ylabel="AP (pycocotools, val split)", title=title)
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def run_formats(cfg: DictConfig) -> list[dict[str, Any]]:
    """Every format of `cfg.formats` on the checkpoint's val split; the table, printed and written."""
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    coco, image_dir, images = val_split(cfg)
    formats = [parse_format(spec) for spec in cfg.formats]
    if (*BASELINE, None) not in formats:
        formats.insert(0, (*BASELINE, None))
    rows = []
    for backend, precision, outputs in formats:
        many = f" ({outputs} outputs)" if outputs else ""
        print(f"{backend} {precision}{many}: {len(images)} images ...", flush=True)
        start = time.perf_counter()
        rows.append(run_format(backend, precision, outputs, cfg, coco, image_dir, images, output_dir))
        print(f"  {rows[-1]['status']} in {time.perf_counter() - start:.0f} s {rows[-1].get('reason', '')}", flush=True)
    judge(rows, cfg.gate_ap_points)
    header = (f"{cfg.weights}: {len(images)} val images of {cfg.val_json or 'its run'}; {cpu_description()}; "
              f"accuracy gate: at most {cfg.gate_ap_points} AP points below torch fp32")
    print("\n" + write_table(rows, header, output_dir))
    plot_formats(rows, f"{Path(cfg.weights).name}: AP vs latency", output_dir / "formats.png")
    print(f"wrote {output_dir}/formats.csv, formats.md, formats.png")
    return rows
