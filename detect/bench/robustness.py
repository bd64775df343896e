"""`python -m detect.bench robustness weights=<checkpoint>`: AP of a trained checkpoint on its val images under the
ImageNet-C corruptions and severities of configs/robustness.yaml, for each backend x precision, and the robustness
figures of Michaelis et al. 2019 ("Benchmarking Robustness in Object Detection"): mPC, the mean AP over every
corruption and severity, and rPC = mPC / clean AP. Writes robustness.csv, robustness.md and robustness.png (AP
against severity, a panel per corruption, a line per format) to the run folder.

The images of a corruption and severity are made once (each from its own seed) and every format runs on those same
pixels, one image at a time through `Detector` (the path infer.py takes); AP is `detect.evaluation.evaluate_coco`'s.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from detect.bench.corruptions import check_severities, corrupt_bgr, corruption_names, corruption_seed
from detect.bench.formats import val_split
from detect.evaluation.coco import evaluate_coco
from detect.export.images import read_images
from detect.inference.backends import check_backend
from detect.inference.detector import Detector
from detect.structures import to_coco_results
from detect.utils.cpu import cpu_description
from detect.utils.errors import DetectError
from detect.utils.plotting import plt, save_figure

COLUMNS = ["format", "precision", "corruption", "severity", "AP", "AP50", "images", "corrupt_s", "detect_s"]
CLEAN = "clean"  # the corruption name of the uncorrupted row (severity 0)
FULL_RUN = 15 * 5  # settings of the full benchmark: the 15 common corruptions x 5 severities


def load_detectors(cfg: DictConfig) -> dict[tuple[str, str], Detector]:
    """A Detector for every backend/precision of `cfg.formats`, all of them checked before the first loads."""
    formats = [tuple(spec.partition("/")[::2]) for spec in cfg.formats]
    if not formats:
        raise DetectError("formats is empty; name at least one backend/precision, e.g. formats=[torch/fp32]")
    for backend, precision in formats:
        check_backend(backend, None, precision)
    return {(backend, precision): Detector.load(cfg.weights, backend=backend,
                                                precision=precision, score_threshold=cfg.score_threshold,
                                                threads=cfg.threads, calibration=cfg.calibration)
            for backend, precision in dict.fromkeys(formats)}


def detect_coco(detector: Detector, images: list[np.ndarray], image_ids: list[int], bar: tqdm) -> list[dict]:
    """COCO results of `detector` on `images`, one image a call."""
    outputs = []
    for image in images:
        result = detector(image)
        outputs.append({"boxes": result.boxes, "labels": result.labels, "scores": result.scores})
        bar.update()
    return to_coco_results(outputs, image_ids, detector.backend.classes.category_ids)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per format: clean AP, mPC (mean AP over the corrupted rows), rPC = mPC / clean AP, seconds per setting."""
    summary = []
    for key in dict.fromkeys((row["format"], row["precision"]) for row in rows):
        own = [row for row in rows if (row["format"], row["precision"]) == key]
        clean = next(row["AP"] for row in own if row["corruption"] == CLEAN)
        corrupted = [row for row in own if row["corruption"] != CLEAN]
        mpc = float(np.mean([row["AP"] for row in corrupted])) if corrupted else float("nan")
        summary.append({"format": key[0], "precision": key[1], "clean_AP": clean, "mPC": mpc,
                        "rPC": mpc / clean if clean > 0 else float("nan"), "settings": len(corrupted),
                        "detect_s": float(np.mean([row["detect_s"] for row in own]))})
    return summary


def write_tables(rows: list[dict[str, Any]], summary: list[dict[str, Any]], header: str, output_dir: Path) -> str:
    """robustness.csv (a row per format x corruption x severity) and robustness.md; returns the markdown."""
    with (output_dir / "robustness.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows({key: row[key] for key in COLUMNS} for row in rows)
    lines = [header, "", "| format | precision | clean AP | mPC | rPC | corrupted settings |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {s['format']} | {s['precision']} | {s['clean_AP']:.3f} | {s['mPC']:.3f} | {s['rPC']:.3f} | "
              f"{s['settings']} |" for s in summary]
    severities = sorted({row["severity"] for row in rows} - {0})
    for s in summary:
        own = {(r["corruption"], r["severity"]): r["AP"] for r in rows if (r["format"], r["precision"]) ==
               (s["format"], s["precision"])}
        lines += ["", f"AP of {s['format']} {s['precision']} by severity:", "",
                  "| corruption | " + " | ".join(map(str, severities)) + " | mean |",
                  "|---|" + "---:|" * (len(severities) + 1)]
        for corruption in dict.fromkeys(c for c, _ in own if c != CLEAN):
            values = [own[corruption, level] for level in severities]
            lines.append(f"| {corruption} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |")
    markdown = "\n".join(lines) + "\n"
    (output_dir / "robustness.md").write_text(markdown)
    return markdown


def plot_robustness(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """AP against severity (0: clean), a panel for the mean over corruptions then one per corruption, a line per
    format."""
    corruptions = list(dict.fromkeys(row["corruption"] for row in rows if row["corruption"] != CLEAN))
    panels = ["mean over corruptions", *corruptions]
    columns = min(len(panels), 4)
    lines = -(-len(panels) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(0.8 + 3.6 * columns, 0.8 + 3.0 * lines), squeeze=False,
                                sharey=True, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for key in dict.fromkeys((row["format"], row["precision"]) for row in rows):
        own = [row for row in rows if (row["format"], row["precision"]) == key]
        clean = next(row["AP"] for row in own if row["corruption"] == CLEAN)
        severities = sorted({row["severity"] for row in own} - {0})
        for ax, panel in zip(axes.flat, panels):
            chosen = [row for row in own if panel in (row["corruption"], panels[0]) and row["corruption"] != CLEAN]
            means = [np.mean([row["AP"] for row in chosen if row["severity"] == level]) for level in severities]
            ax.plot([0, *severities], [clean, *means], marker="o", label=" ".join(key))
            ax.set_title(panel, fontsize=10)
    for ax in axes.flat[:len(panels)]:
        ax.set(xlabel="severity (0: clean)", xticks=range(6))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("AP")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=12)
    return save_figure(figure, path)


def settings(corruptions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """The clean setting, then every corruption x severity."""
    return [(CLEAN, 0), *((name, level) for name in corruptions for level in severities)]


def run_robustness(cfg: DictConfig) -> list[dict[str, Any]]:
    """Every format of `cfg.formats` on the val split clean and under every corruption x severity; the rows."""
    corruptions, severities = corruption_names(cfg.corruptions), check_severities(cfg.severities)
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    coco, image_dir, entries = val_split(cfg)
    clean, image_ids = read_images(entries, image_dir), [entry["id"] for entry in entries]
    detectors = load_detectors(cfg)
    plan = settings(corruptions, severities)
    print(f"{len(plan)} settings (clean + {len(corruptions)} corruptions x {len(severities)} severities) x "
          f"{len(detectors)} formats x {len(clean)} images", flush=True)
    rows = []
    bar = tqdm(total=len(plan) * len(detectors) * len(clean), unit="image", disable=not cfg.progress,
               dynamic_ncols=True)
    for corruption, severity in plan:
        bar.set_description(f"{corruption} {severity}: corrupting")
        start = time.perf_counter()
        images = clean if corruption == CLEAN else [
            corrupt_bgr(image, corruption, severity, corruption_seed(cfg.seed, image_id, corruption, severity))
            for image, image_id in zip(clean, image_ids)]
        corrupt_s = time.perf_counter() - start
        for (backend, precision), detector in detectors.items():
            bar.set_description(f"{corruption} {severity}: {backend} {precision}")
            start = time.perf_counter()
            results = detect_coco(detector, images, image_ids, bar)
            stats = evaluate_coco(coco, results, detector.backend.classes, image_ids).stats
            rows.append({"format": backend, "precision": precision, "corruption": corruption, "severity": severity,
                         "AP": stats["AP"], "AP50": stats["AP50"], "images": len(images), "corrupt_s": corrupt_s,
                         "detect_s": time.perf_counter() - start})
            bar.write(f"{corruption} {severity} {backend} {precision}: AP {stats['AP']:.3f} AP50 {stats['AP50']:.3f}"
                      f" (corrupt {corrupt_s:.1f} s, detect + evaluate {rows[-1]['detect_s']:.1f} s)")
    bar.close()
    summary = summarize(rows)
    header = (f"{cfg.weights}: {len(clean)} val images of {cfg.val_json or 'its run'}; {len(corruptions)} corruptions "
              f"x severities {severities}, seed {cfg.seed}; {cpu_description()}")
    print("\n" + write_tables(rows, summary, header, output_dir))
    plot_robustness(rows, f"{Path(cfg.weights).name}: AP under corruption", output_dir / "robustness.png")
    per_setting = np.mean([row["corrupt_s"] for row in rows if row["corruption"] != CLEAN] or [0.0])
    full_s = FULL_RUN * (per_setting + sum(s["detect_s"] for s in summary))
    print(f"the full {FULL_RUN}-setting run on these images at this run's mean time per setting: "
          f"~{full_s / 60:.0f} min")
    print(f"wrote {output_dir}/robustness.csv, robustness.md, robustness.png")
    return rows
