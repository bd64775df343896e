"""What infer.py runs: detect on every frame of a source, write the annotated media and the results, time each stage.

Per frame: decode (background thread) -> preprocess (the uint8 frame to the device, then RGB float there) -> model
(the detector, whose own transform resizes to `model.min_size`/`model.max_size` and normalizes) -> postprocess
(results to the host, score threshold) -> draw + write (background thread). GPU stages are timed with CUDA events.

The model is any `Detector.model`: a callable taking a list of float32 RGB 3xHxW tensors in 0..1 on the device and
returning per image `boxes` (xyxy, input pixels), `labels` and `scores`, as torchvision's FasterRCNN in eval mode
does; `load_detector` builds that one, and another backend (ONNX Runtime, ...) fits the same call.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from detect.config import check_model_config
from detect.device import resolve_device
from detect.errors import DetectError
from detect.evaluation import to_coco_results
from detect.model import COCO_CLASSES, Classes, build_model, read_detector_weights
from detect.timing import DeviceTimer, cuda_memory_mb, peak_rss_mb, summarize
from detect.video import BackgroundWorker, Frame, FrameReader, ImageWriter, VideoWriter, open_writer
from detect.visualize import draw_detections, draw_overlay

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
STAGES = ("decode", "preprocess", "model", "postprocess", "draw_write", "end_to_end")
CSV_COLUMNS = ("frame", "source", "warmup", *(f"{stage}_ms" for stage in STAGES), "detections",
               "vram_allocated_mb", "vram_reserved_mb")

DetectorCall = Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]]


@dataclass
class Detector:
    """A detection backend: `model` (see the module docstring), its classes, and what the report says about it."""

    model: DetectorCall
    classes: Classes
    description: str
    # (resized, padded) HxW the network sees for an HxW frame; None where the backend cannot tell.
    input_size: Callable[[int, int], tuple[tuple[int, int], tuple[int, int]]] | None = None


def check_infer_config(cfg: DictConfig) -> None:
    """Unset keys, choices and ranges, before any work."""
    if OmegaConf.is_missing(cfg, "source"):
        raise DetectError("source must be set: an image, a folder, a glob, a video file, a webcam index or a URL, "
                          "e.g. source=../shared/data/vtest.avi")
    if cfg.precision not in PRECISIONS:
        raise DetectError(f"precision={cfg.precision!r} is not allowed; choose one of {', '.join(PRECISIONS)}")
    if (cfg.warmup_frames < 0 or cfg.queue_size < 1 or (cfg.max_frames is not None and cfg.max_frames < 1)
            or (cfg.threads is not None and cfg.threads < 1)):
        raise DetectError(f"warmup_frames={cfg.warmup_frames} must be >= 0, queue_size={cfg.queue_size} >= 1, "
                          f"max_frames={cfg.max_frames} and threads={cfg.threads} null or >= 1")
    if not 0.0 <= cfg.score_threshold < 1.0:
        raise DetectError(f"score_threshold={cfg.score_threshold} must be in [0, 1)")
    check_model_config(cfg.model)


def fold_batchnorm(resnet: nn.Module) -> None:
    """Fold every batch norm of an eval-mode torchvision ResNet (frozen or not) into the convolution before it.

    The outputs are the same up to float rounding, and a pass over each activation is saved.
    """
    for block in list(resnet.modules()):
        for conv_name, norm_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
            conv, norm = getattr(block, conv_name, None), getattr(block, norm_name, None)
            if isinstance(conv, nn.Conv2d) and norm is not None and not isinstance(norm, nn.Identity):
                setattr(block, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(block, norm_name, nn.Identity())
        downsample = getattr(block, "downsample", None)
        if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
            block.downsample = nn.Sequential(fuse_conv_bn_eval(downsample[0], downsample[1]))


def _classes_for(weights_classes: Classes | None, num_classes: int, source: str) -> Classes:
    if weights_classes is None:
        if num_classes == len(COCO_CLASSES) + 1:
            return COCO_CLASSES
        return Classes([f"class {i}" for i in range(1, num_classes)], list(range(1, num_classes)))
    if len(weights_classes) != num_classes - 1:
        raise DetectError(f"weights {source} name {len(weights_classes)} classes but the box predictor has "
                          f"{num_classes - 1}; the checkpoint is inconsistent")
    return weights_classes


def load_detector(cfg: DictConfig, device: torch.device) -> Detector:
    """torchvision's Faster R-CNN from the `model` config and `weights`, optimized for inference on `device`.

    Batch norms folded into the convolutions, then as configured: channels_last, torch.compile of the backbone and
    RPN head, autocast to fp16/bf16. With `weights=null` the weights are random with COCO's 91 outputs.
    """
    if str(cfg.weights).endswith(".onnx"):
        from detect.export import OnnxDetector  # onnxruntime is imported only when an ONNX model is asked for

        onnx_detector = OnnxDetector(cfg.weights, device, cfg.threads)
        classes = onnx_detector.classes or COCO_CLASSES
        return Detector(onnx_detector, classes, f"Faster R-CNN, ONNX Runtime ({cfg.weights})")
    weights = read_detector_weights(str(cfg.weights), cfg.model.backbone.name) if cfg.weights else None
    num_classes = weights.num_classes if weights else len(COCO_CLASSES) + 1
    classes = _classes_for(weights.classes if weights else None, num_classes, str(cfg.weights))
    model_cfg = cfg.model
    if cfg.model_from_checkpoint and weights is not None and weights.model_config:
        # the architecture and sizes the checkpoint was trained with; only the score threshold is this run's
        model_cfg = OmegaConf.merge(weights.model_config, {"roi": {"score_thresh": cfg.score_threshold}})
    model: FasterRCNN = build_model(model_cfg, num_classes, weights).eval()
    fold_batchnorm(model.backbone.body)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.backbone = torch.compile(model.backbone, dynamic=False)
        model.rpn.head = torch.compile(model.rpn.head, dynamic=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # a video keeps one size: the fastest kernels are found once
    dtype = PRECISIONS[cfg.precision]

    def detect(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(images)

    def input_size(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        images, _ = model.transform([torch.zeros(3, height, width, device=device)])
        return tuple(images.image_sizes[0]), tuple(images.tensors.shape[-2:])

    weights_text = weights.source if weights else "random weights"
    return Detector(detect, classes, f"Faster R-CNN {model_cfg.backbone.name}-FPN ({weights_text})", input_size)


def to_model_input(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 pixels -> RGB float32 3xHxW in 0..1 on `device`; only the uint8 frame crosses to the device."""
    pixels = torch.from_numpy(image).to(device, non_blocking=True)
    return pixels.permute(2, 0, 1).flip(0).float().div_(255.0)


def postprocess(output: dict[str, torch.Tensor], score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy), labels and scores at or above `score_threshold`, as numpy arrays on the host."""
    keep = output["scores"] >= score_threshold
    return (output["boxes"][keep].float().cpu().numpy(), output["labels"][keep].cpu().numpy(),
            output["scores"][keep].float().cpu().numpy())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return f"cpu ({cpu}, {torch.get_num_threads()} threads)"


@dataclass
class FrameResult:
    """What the main loop hands to the writer thread for one frame."""

    frame: Frame
    warmup: bool
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    stage_ms: dict[str, float]  # preprocess, model, postprocess
    taken: float  # perf_counter when the loop took the frame from the decode queue
    vram_mb: dict[str, float]
    overlay: list[str]


@dataclass
class ResultWriter:
    """Writes each frame's results as they come, so memory stays flat: the annotated frame, a frames.csv row and the
    detections.json records; keeps the per-stage milliseconds of the frames after warm-up."""

    output_dir: Path
    classes: Classes
    media: VideoWriter | ImageWriter | None
    show: bool = False
    verbose: bool = False
    frame_count: int | None = None
    samples: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})
    warmup_model_ms: list[float] = field(default_factory=list)
    detections: int = 0
    quit_requested: bool = False

    def __post_init__(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._csv_file = open(self.output_dir / "frames.csv", "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self._json_file = open(self.output_dir / "detections.json", "w")
        self._json_file.write("[")
        self._first_record = True

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        start = time.perf_counter()
        if self.media is not None or self.show:
            draw_detections(frame.image, result.boxes, result.labels, result.scores, self.classes.names)
            draw_overlay(frame.image, result.overlay)
            if self.media is not None:
                self.media.write(frame.image, frame.name)
            if self.show:
                cv2.imshow("detect", frame.image)
                self.quit_requested = cv2.waitKey(1) & 0xFF in (ord("q"), 27)
        done = time.perf_counter()
        stage_ms = {"decode": frame.decode_ms, **result.stage_ms, "draw_write": (done - start) * 1000.0,
                    "end_to_end": frame.decode_ms + (done - result.taken) * 1000.0}
        self._csv.writerow([frame.index, frame.name, int(result.warmup), *(f"{stage_ms[s]:.3f}" for s in STAGES),
                            len(result.scores), *(f"{result.vram_mb[k]:.1f}" if result.vram_mb else ""
                                                  for k in ("allocated", "reserved"))])
        self._csv_file.flush()
        output = {"boxes": result.boxes, "labels": result.labels, "scores": result.scores}
        for record in to_coco_results([output], [frame.index], self.classes.category_ids):
            record.update(frame=frame.index, source=frame.name)
            self._json_file.write(("\n" if self._first_record else ",\n") + json.dumps(record))
            self._first_record = False
        self.detections += len(result.scores)
        if result.warmup:
            self.warmup_model_ms.append(result.stage_ms["model"])
        else:
            for stage in STAGES:
                self.samples[stage].append(stage_ms[stage])
        if self.verbose:
            names = [self.classes.names[label - 1] for label in result.labels.tolist()]
            counts = ", ".join(f"{names.count(name)} {name}" for name in dict.fromkeys(names)) or "nothing"
            tqdm.write(f"frame {frame.index + 1}/{self.frame_count or '?'} {frame.name}: {counts} "
                       f"{stage_ms['end_to_end']:.1f}ms")

    def close(self) -> None:
        self._json_file.write("\n]\n")
        self._json_file.close()
        self._csv_file.close()


@contextmanager
def _stop_on_sigint(reader: FrameReader) -> Iterator[threading.Event]:
    """Ctrl-C ends the run after the current frame (the outputs are finalized); a second one stops at once."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, stack: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        reader.stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _finite(value: Any) -> Any:
    """NaN (no frames measured) as null, so summary.json stays valid JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def infer(cfg: DictConfig, detector: Detector | None = None) -> dict[str, Any]:
    """Run the configured detector (or `detector`) over `cfg.source`; write the outputs and return the summary."""
    check_infer_config(cfg)
    device = resolve_device(cfg.device)
    if cfg.show:
        try:
            cv2.namedWindow("detect")
        except cv2.error:
            raise DetectError("show=true needs OpenCV with a GUI (opencv-python); this one is headless: "
                              "use show=false and watch the saved video") from None
    reader = FrameReader(cfg.source, cfg.queue_size)  # opened first: a bad source fails before the model loads
    threads = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        loaded = detector or load_detector(cfg, device)
        return _run(cfg, reader, loaded, device)
    finally:
        reader.close()
        torch.set_num_threads(threads)


def _run(cfg: DictConfig, reader: FrameReader, detector: Detector, device: torch.device) -> dict[str, Any]:
    output_dir = Path(cfg.output_dir)
    media = open_writer(reader, output_dir) if cfg.save else None
    total = min(filter(None, [reader.frame_count, cfg.max_frames]), default=None)
    results = ResultWriter(output_dir, detector.classes, media, cfg.show, cfg.verbose, total)
    writer = BackgroundWorker(results.write, cfg.queue_size, threaded=not cfg.show)  # HighGUI wants one thread
    timers = {stage: DeviceTimer(device) for stage in ("preprocess", "model", "postprocess")}
    frames, stopped_by, sizes = 0, "end of input" if reader.frame_count else "stream closed", None
    run_start = time.perf_counter()
    measure_start = previous_taken = frame_interval_ms = None
    bar = tqdm(total=total, unit="frame", disable=not cfg.progress, dynamic_ncols=True)
    try:
        with _stop_on_sigint(reader) as interrupted, torch.inference_mode():
            for frame in reader:
                taken = time.perf_counter()
                warmup = frames < cfg.warmup_frames
                if not warmup and measure_start is None:
                    measure_start = taken
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                if sizes is None:
                    sizes = (frame.image.shape[:2], *(detector.input_size(*frame.image.shape[:2])
                                                      if detector.input_size else (None, None)))
                with timers["preprocess"]:
                    image = to_model_input(frame.image, device)
                with timers["model"]:
                    output = detector.model([image])[0]
                with timers["postprocess"]:
                    boxes, labels, scores = postprocess(output, cfg.score_threshold)
                stage_ms = {stage: timer.elapsed_ms for stage, timer in timers.items()}
                if previous_taken is not None:  # the overlay's FPS: a moving average of the frame interval
                    interval = (taken - previous_taken) * 1000.0
                    previous_ms = interval if frame_interval_ms is None else frame_interval_ms
                    frame_interval_ms = 0.9 * previous_ms + 0.1 * interval
                previous_taken = taken
                overlay = [f"{1000.0 / frame_interval_ms:.1f} FPS" if frame_interval_ms else "- FPS",
                           f"{sum(stage_ms.values()):.1f} ms detect"]
                writer.submit(FrameResult(frame, warmup, boxes, labels, scores, stage_ms, taken,
                                          cuda_memory_mb(device), overlay))
                frames += 1
                bar.update()
                if cfg.max_frames is not None and frames >= cfg.max_frames:
                    stopped_by = "max_frames"
                    break
                if results.quit_requested:
                    stopped_by = "window closed"
                    break
            if interrupted.is_set():
                stopped_by = "interrupted"
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        bar.close()
        try:
            writer.close()
        finally:
            if media is not None:
                media.close()  # the video is playable from here on
            results.close()
    end = time.perf_counter()

    measured = frames - min(frames, cfg.warmup_frames)
    measured_s = end - measure_start if measure_start is not None else float("nan")
    vram = cuda_memory_mb(device)
    summary = {
        "source": str(cfg.source),
        "source_kind": reader.kind,
        "device": device_name(device),
        "model": detector.description,
        "classes": detector.classes.names,
        "frame_size": list(sizes[0]) if sizes else None,
        "network_input_size": list(sizes[1]) if sizes and sizes[1] else None,
        "padded_input_size": list(sizes[2]) if sizes and sizes[2] else None,
        "precision": cfg.precision,
        "channels_last": bool(cfg.channels_last),
        "compile": bool(cfg.compile),
        "frames": frames,
        "warmup_frames": frames - measured,
        "measured_frames": measured,
        "corrupt_frames": reader.corrupt,
        "corrupt": reader.corrupt_names[:20],
        "dropped_frames": reader.dropped,
        "stopped_by": stopped_by,
        "detections": results.detections,
        "stages_ms": {stage: summarize(values) for stage, values in results.samples.items()},
        "warmup_model_ms": results.warmup_model_ms,
        "throughput_fps": measured / measured_s if measured else float("nan"),
        "measured_wall_s": measured_s,
        "total_wall_s": end - run_start,
        "peak_vram_allocated_mb": vram.get("peak_allocated"),
        "peak_vram_reserved_mb": vram.get("peak_reserved"),
        "peak_rss_mb": peak_rss_mb(),
        "outputs": {"media": str(media.path) if media else None, "detections": str(output_dir / "detections.json"),
                    "frames": str(output_dir / "frames.csv"), "summary": str(output_dir / "summary.json")},
    }
    summary = _finite(summary)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary), flush=True)
    return summary


def _size_text(size: list[int] | None) -> str:
    return "x".join(map(str, size)) if size else "?"


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table: what ran, on what, how fast each stage was, memory."""
    options = ", ".join([summary["precision"]] + [name for name in ("channels_last", "compile") if summary[name]])
    peak_vram = ""
    if summary["peak_vram_allocated_mb"] is not None:
        peak_vram = (f"; peak VRAM {summary['peak_vram_allocated_mb']:.0f} MiB allocated, "
                     f"{summary['peak_vram_reserved_mb']:.0f} MiB reserved (after warm-up)")
    lines = [
        f"{'device':<12}{summary['device']}",
        f"{'model':<12}{summary['model']}, {len(summary['classes'])} classes, {options}",
        f"{'input':<12}frames {_size_text(summary['frame_size'])} (HxW) -> network "
        f"{_size_text(summary['network_input_size'])} (padded {_size_text(summary['padded_input_size'])})",
        f"{'frames':<12}{summary['frames']} ({summary['warmup_frames']} warm-up left out of the statistics, "
        f"{summary['corrupt_frames']} corrupt skipped, {summary['dropped_frames']} dropped); "
        f"stopped: {summary['stopped_by']}; {summary['detections']} detections",
        f"{'stage (ms)':<14}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
    ]
    for stage, stats in summary["stages_ms"].items():
        values = [stats[k] for k in ("mean", "p50", "p90", "p99", "max")]
        lines.append(f"  {stage.replace('_', '+' if stage == 'draw_write' else '-'):<12}"
                     + "".join(f"{v:>9.1f}" if v is not None else f"{'-':>9}" for v in values))
    fps = summary["throughput_fps"]
    lines += [
        f"{'throughput':<12}" + (f"{fps:.2f} FPS ({summary['measured_frames']} frames in "
                                 f"{summary['measured_wall_s']:.1f} s)" if fps else "- (no frame after warm-up)"),
        f"{'memory':<12}peak RSS {summary['peak_rss_mb']:.0f} MiB{peak_vram}",
        f"{'outputs':<12}{', '.join(str(path) for path in summary['outputs'].values() if path)}",
    ]
    return "\n".join(lines)
