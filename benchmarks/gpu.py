"""The GPU acceptance run: one command, one markdown table, under 8 minutes on one GPU.

    uv run python -m benchmarks.gpu                       # cuda (or --device cuda:1); on a CPU-only machine: one line
    uv run python -m benchmarks.gpu --sections train infer
    uv run python -m benchmarks.gpu --device cpu --smoke  # tiny sizes on the CPU: every section, end to end

Sections (each reuses the benchmark that measures it on the CPU):
- train: R50-FPN training at 800x1333 (benchmarks.train_loop's Lightning run, synthetic images with sides of
  800-1333 px) at batch 2/4/8 in 32-true, 16-mixed and bf16-mixed: images/s (median step, the GPU synchronized at
  each mark) and peak VRAM (allocated / reserved, reset before each point; a fresh model each point).
- infer: infer.py's pipeline on vtest.avi at 800x1333 for R50 and R101 in fp32 / fp16 / bf16 with channels_last and
  torch.compile (benchmarks.video: random weights, 91 COCO outputs), against the naive loop on the same GPU: p50 /
  p90 ms per stage, FPS, peak VRAM; each half-precision run's detections against fp32's, and the same-class
  invariant: detections a float64 class-wise NMS at the model's NMS IoU would still remove (0 when none overlap).
- ap: AP and AP50 (pycocotools) of the demo checkpoint on its val split, fp32 vs fp16 vs bf16 (detect.bench.formats'
  loop); without --weights the demo is trained first on this device.
- sweep: the ResNet sweep's GPU points (detect.bench.resnet) beside commonly quoted figures.
- sync_bn: model.backbone.norm=sync_bn on 2 gloo ranks (both on this GPU) against one process with plain batch norm
  on the whole batch (benchmarks.sync_bn); on a CPU a row says it was skipped (SyncBatchNorm refuses CPU tensors).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict

from benchmarks import sync_bn, video
from benchmarks.gpu_plan import FULL, SMOKE, Plan
from benchmarks.train_loop import compose_train, initial_model, make_datamodule, train_lightning
from detect.bench.formats import evaluate_format
from detect.bench.resnet import run_sweep
from detect.config import compose
from detect.data.coco import index_coco
from detect.evaluation.coco import evaluate_coco
from detect.export.images import run_split
from detect.export.parity import detector_parity, same_class_overlaps
from detect.inference.detector import Detector, model_config
from detect.modeling.model import SYNC_BN_NEEDS_GPUS
from detect.utils.device import device_name, resolve_device
from detect.utils.errors import exit_on_error
from detect.utils.timing import cuda_memory_mb, reset_cuda_peaks, summarize

SECTIONS = ("train", "infer", "ap", "sweep", "sync_bn")
DEMO = video.ROOT.parent / "demo" / "run" / "checkpoints" / "best.ckpt"
NO_GPU = ("no GPU here (torch sees none): nothing measured. Run this where a GPU is, or `--device cpu --smoke` to "
          "check the script on tiny sizes")
COLUMNS = ["section", "model", "setting", "measured", "peak VRAM MiB alloc / reserved", "against", "note"]


def row(section: str, model: str, setting: str, measured: str, memory: dict[str, float] | None = None,
        against: str = "", note: str = "") -> dict[str, str]:
    vram = f"{memory['peak_allocated']:.0f} / {memory['peak_reserved']:.0f}" if memory else ""
    return dict(zip(COLUMNS, [section, model, setting, measured, vram, against, note]))


def free_memory(device: torch.device) -> None:
    """Drop what the previous point left, so that the next one's peak window starts from its own model."""
    gc.collect()
    reset_cuda_peaks(device, release_cached=True)


def train_rows(plan: Plan, device: torch.device, output_dir: Path, cache_dir: str | None) -> list[dict[str, str]]:
    rows, baseline = [], {}
    accelerator = ["trainer.accelerator=gpu", f"trainer.devices=[{device.index or 0}]"] if device.type == "cuda" \
        else ["trainer.accelerator=cpu"]
    warmup, steps = plan.train_steps
    for batch in plan.batches:
        for precision in ("32-true", "16-mixed", "bf16-mixed"):
            model_name, setting = f"{plan.train_backbone}-FPN", f"batch {batch}, {precision}"
            if precision == "16-mixed" and device.type != "cuda":
                rows.append(row("train", model_name, setting, "", note="skipped: fp16 AMP runs on a GPU"))
                continue
            if precision == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                rows.append(row("train", model_name, setting, "", note="skipped: this GPU has no bf16"))
                continue
            cfg = compose_train([*accelerator, *plan.train_data, f"data.batch_size={batch}",
                                 f"trainer.precision={precision}", "callbacks.progress_bar.refresh_rate=0",
                                 "plots=false", f"data.cache_dir={cache_dir}" if cache_dir else "data.cache_dir=null"],
                                output_dir / f"train_b{batch}_{precision}")
            with open_dict(cfg):
                cfg.model = OmegaConf.merge(model_config(plan.train_backbone), OmegaConf.from_dotlist(plan.train_model))
            datamodule = make_datamodule(cfg)
            free_memory(device)
            model = initial_model(cfg, len(datamodule.classes) + 1, seed=0)
            marks = train_lightning(cfg, model, datamodule, warmup + steps, seed=0, device=device)
            memory = cuda_memory_mb(device)
            del model, datamodule
            ends = [end for _, end in marks]
            images_s = batch / summarize([b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])])["p50"]
            baseline.setdefault(batch, images_s)
            rows.append(row("train", model_name, setting, f"{images_s:.3g} img/s", memory,
                            f"{images_s / baseline[batch]:.2f}x 32-true", f"{steps} steps after {warmup}"))
    return rows


def overlaps(detections: list[dict[str, torch.Tensor]], iou: float) -> int:
    return sum(same_class_overlaps(d["boxes"], d["labels"], iou) for d in detections)


def stage_text(stages: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{name} {s['p50']:.1f}/{s['p90']:.1f}" for name, s in stages.items() if s["n"])


def infer_rows(plan: Plan, device: torch.device, source: Path, output_dir: Path) -> list[dict[str, str]]:
    precisions = ["fp32", "fp16"] + (["bf16"] if device.type != "cuda" or torch.cuda.is_bf16_supported() else [])
    nms_iou = model_config().roi.nms_thresh
    warmup, frames = plan.infer_frames
    rows = []
    for backbone in plan.infer_backbones:
        free_memory(device)
        args = video.parse_args(["--source", str(source), "--device", str(device), "--backbone", backbone, "--size", plan.infer_size,
                                 "--warmup", str(warmup), "--frames", str(frames), "--score-threshold",
                                 str(plan.infer_score_threshold), "--peak-matmul", str(plan.peak_matmul),
                                 "--compile" if plan.compile else "--no-compile", "--output-dir",
                                 str(output_dir / f"infer_{backbone}"), "--runs", *(f"torch/{p}" for p in precisions)])
        figures, detections = video.run(args)
        naive_ms = 1000.0 / figures["naive_fps"]
        rows.append(row("infer", f"{backbone}-FPN {plan.infer_size}", "naive loop, fp32 eager",
                        f"{naive_ms:.1f} ms/frame", note="cv2 -> tensor -> model -> draw -> write, in sequence"))
        for run in figures["runs"]:
            precision = run["spec"].split("/")[1]
            versus_fp32 = detector_parity(detections["torch/fp32"], detections[run["spec"]], box_px=2.0,
                                          score_tol=0.02)
            vram = dict(zip(("peak_allocated", "peak_reserved"), run["vram_mb"])) if run["vram_mb"][0] else None
            rows.append(row("infer", f"{backbone}-FPN {plan.infer_size}",
                            f"pipeline {precision}, channels_last{', compile' if plan.compile else ''}",
                            f"p50/p90 ms: {stage_text(run['stages_ms'])}; {run['fps']:.1f} FPS", vram,
                            f"{run['ratio']:.2f}x the naive loop's FPS",
                            f"same-class pairs above the NMS IoU {overlaps(detections[run['spec']], nms_iou)}; "
                            + (run["parity"] if precision == "fp32" else
                               f"vs fp32 ({'ok' if versus_fp32.ok else 'DIFFERS'}): {versus_fp32.summary}")))
    return rows


def demo_weights(plan: Plan, device: torch.device, output_dir: Path, cache_dir: str | None) -> Path:
    """Train the demo on this device (the checkpoint is not carried to a lent machine); its best.ckpt."""
    from detect.engine.training import run

    accelerator = ["trainer=gpu", f"trainer.devices=[{device.index or 0}]"] if device.type == "cuda" else ["trainer=cpu"]
    run_dir = output_dir / "demo"
    cfg = compose_train([*accelerator, *plan.demo, "plots=false", "callbacks.progress_bar.refresh_rate=0",
                         f"data.cache_dir={cache_dir}" if cache_dir else "data.cache_dir=null"], run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # where run_split finds the val split
    run(cfg)
    return run_dir / "checkpoints" / "best.ckpt"


def ap_rows(weights: Path, device: torch.device) -> list[dict[str, str]]:
    dataset, image_dir = run_split(weights, "val")
    coco = index_coco(dataset)
    images = sorted(coco.imgs.values(), key=lambda entry: entry["id"])
    rows, fp32_ap = [], None
    for precision in ("fp32", "fp16", "bf16"):
        detector = Detector.load(weights, device=str(device), precision=precision, score_threshold=0.05)
        results, _, _ = evaluate_format(detector, images, image_dir, warmup=2)
        stats = evaluate_coco(coco, results, detector.backend.classes, [entry["id"] for entry in images]).stats
        fp32_ap = stats["AP"] if fp32_ap is None else fp32_ap
        rows.append(row("ap", f"demo {weights.name}", precision, f"AP {stats['AP']:.4f}, AP50 {stats['AP50']:.4f}",
                        against=f"{(stats['AP'] - fp32_ap) * 100:+.2f} AP points vs fp32",
                        note=f"{len(images)} val images"))
    return rows


def sweep_rows(plan: Plan, device: torch.device, output_dir: Path) -> list[dict[str, str]]:
    rows = []
    for index, overrides in enumerate(plan.sweep):
        cfg = compose("bench", [*overrides, f"device={device}", f"output_dir={output_dir / f'sweep_{index}'}"])
        for point in run_sweep(cfg):
            memory = ({"peak_allocated": point["vram_alloc_mib"], "peak_reserved": point["vram_reserved_mib"]}
                      if point.get("vram_alloc_mib") else None)
            measured = (f"{point['img_per_s']:.0f} img/s, median {point['median_ms']:.2f} ms"
                        if "median_ms" in point else "")
            rows.append(row("sweep", f"{point['task']} {point['backbone']} {point['size']}",
                            f"batch {point['batch']}, {point['precision']}, {point['backend']}", measured, memory,
                            plan.references.get((point["task"], point["backbone"]), ""), point.get("note") or ""))
    return rows


def sync_bn_rows(device: torch.device) -> list[dict[str, str]]:
    setting = "2 gloo ranks x 2 images vs 1 process x 4 with plain BN, fp32"
    if device.type != "cuda":
        return [row("sync_bn", "resnet18-FPN backbone", setting, "", note=f"skipped: {SYNC_BN_NEEDS_GPUS}")]
    return [row("sync_bn", "resnet18-FPN backbone", setting, sync_bn.verdict(sync_bn.check(str(device))),
                note="features, summed gradients and running statistics")]


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows])


def run(args: argparse.Namespace) -> list[dict[str, str]] | None:
    """Every section asked for; the table, printed and written to table.md. None on a machine without a GPU."""
    if not args.smoke and not torch.cuda.is_available():
        print(NO_GPU)
        return None
    device, plan = resolve_device(args.device), SMOKE if args.smoke else FULL
    if args.smoke:
        torch.set_num_threads(1)  # tiny models gain nothing from more, and stall on a shared CPU
    args.output_dir.mkdir(parents=True, exist_ok=True)
    print(f"{device_name(device)}; torch {torch.__version__}; sections {' '.join(args.sections)}", flush=True)
    sections: dict[str, Callable[[], list[dict[str, str]]]] = {
        "train": lambda: train_rows(plan, device, args.output_dir, args.cache_dir),
        "infer": lambda: infer_rows(plan, device, args.source, args.output_dir),
        "ap": lambda: ap_rows(args.weights or demo_weights(plan, device, args.output_dir, args.cache_dir), device),
        "sweep": lambda: sweep_rows(plan, device, args.output_dir),
        "sync_bn": lambda: sync_bn_rows(device),
    }
    rows, start = [], time.perf_counter()
    for name in args.sections:
        section_start = time.perf_counter()
        rows += sections[name]()
        print(f"section {name}: {time.perf_counter() - section_start:.0f} s", flush=True)
    table = f"{device_name(device)}, torch {torch.__version__}, {time.perf_counter() - start:.0f} s\n\n{markdown(rows)}\n"
    (args.output_dir / "table.md").write_text(table)
    print("\n" + table + f"\nwrote {args.output_dir / 'table.md'}")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every section runs")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--source", type=Path, default=video.VIDEO, help="the video of the infer section "
                        "(default: %(default)s)")
    parser.add_argument("--weights", type=Path, default=DEMO if DEMO.is_file() else None,
                        help="the demo checkpoint for the AP section (default: the demo run beside the checkout, "
                             "else a demo trained here first)")
    parser.add_argument("--cache-dir", default=None, help="where the synthetic data goes (default: $DETECT_CACHE)")
    parser.add_argument("--output-dir", type=Path,
                        default=Path("outputs") / "bench" / f"gpu_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return parser.parse_args(argv)


def main() -> None:
    exit_on_error(run, parse_args())


if __name__ == "__main__":
    main()
