"""What infer.py runs: `Detector.stream()` over a source, its results drawn and written on a background thread
(writer.py: the annotated video or images, detections.json, frames.csv, labels, tracks), then summary.json and the
table, and the tracking metrics with track_gt.

The first `warmup_frames` are run and written but left out of the statistics. Ctrl-C (or the end of the input, or a
closed stream) finalizes every output for the frames done; a second Ctrl-C stops at once, still finalizing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from detect.config import check_model_config
from detect.device import resolve_device
from detect.errors import DetectError
from detect.inference.backends import BackendOptions, check_backend, load_backend
from detect.inference.counting import zone_counter
from detect.inference.counting_gt import counting_error
from detect.inference.detector import Detector, check_filters
from detect.inference.events import CountingSink
from detect.inference.sinks import open_media_writer
from detect.inference.sources import FrameReader
from detect.inference.summary import device_name, finite, format_summary
from detect.inference.tracking import Tracker
from detect.inference.worker import BackgroundWorker
from detect.inference.writer import ResultConsumer, ResultWriter
from detect.mot import evaluate_tracking
from detect.timing import cuda_memory_mb, peak_rss_mb, summarize


def check_infer_config(cfg: DictConfig) -> None:
    """Unset keys, choices and ranges, before any work."""
    if OmegaConf.is_missing(cfg, "source"):
        raise DetectError("source must be set: an image, a folder, a glob, a video file, a webcam index or a URL, "
                          "e.g. source=../shared/data/vtest.avi")
    if (cfg.warmup_frames < 0 or cfg.queue_size < 1 or (cfg.max_frames is not None and cfg.max_frames < 1)
            or (cfg.threads is not None and cfg.threads < 1)):
        raise DetectError(f"warmup_frames={cfg.warmup_frames} must be >= 0, queue_size={cfg.queue_size} >= 1, "
                          f"max_frames={cfg.max_frames} and threads={cfg.threads} null or >= 1")
    check_backend(cfg.backend, str(cfg.weights) if cfg.weights else None, cfg.precision)
    check_filters(cfg.score_threshold, cfg.max_det)  # vid_stride: the FrameReader, opened before the model
    check_model_config(cfg.model)
    zone_counter(cfg.get("zones"), cfg.get("tracker"), 0.0)  # the zones' keys and points, and a tracker for them
    if cfg.track_gt is not None:
        if cfg.get("tracker") is None or cfg.vid_stride != 1:
            raise DetectError(f"track_gt={cfg.track_gt} needs a tracker (tracker=bytetrack) and every frame "
                              f"(vid_stride=1, not {cfg.vid_stride})")
        if not Path(cfg.track_gt).is_file():
            raise DetectError(f"track_gt={cfg.track_gt} does not exist; pass a MOTChallenge gt.txt")


def load_detector(cfg: DictConfig) -> Detector:
    """The Detector of an infer config (weights, backend, model group, precision and filters)."""
    options = BackendOptions(resolve_device(cfg.device), cfg.precision, cfg.channels_last, cfg.compile, cfg.threads,
                             cfg.calibration)
    backend = load_backend(cfg.backend, str(cfg.weights) if cfg.weights else None, cfg.model, options,
                           cfg.model_from_checkpoint)
    classes = list(cfg.classes) if cfg.classes is not None else None
    return Detector(backend, options.device, cfg.score_threshold, classes, cfg.max_det)


@contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """Ctrl-C sets the event (the stream ends after the current frame); a second one stops at once."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, stack: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def infer(cfg: DictConfig, detector: Detector | None = None, consumer: ResultConsumer | None = None) -> dict[str, Any]:
    """Run the configured detector (or `detector`) over `cfg.source`; write the outputs and return the summary.

    `consumer(result, warmup)` also gets every result, after it is written (the benchmarks keep them in memory).
    """
    check_infer_config(cfg)
    if cfg.show:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # OpenCV's Qt build aborts the whole process when it finds no display: say so before it tries
            raise DetectError("show=true needs a display (DISPLAY is not set here); use show=false and watch the "
                              "saved video, or run where a desktop session is")
        try:
            cv2.namedWindow("detect")
        except cv2.error:
            raise DetectError("show=true needs OpenCV with a GUI (opencv-python); this one is headless: "
                              "use show=false and watch the saved video") from None
    threads = torch.get_num_threads()
    with _stop_on_sigint() as interrupted:
        # opened first: a bad source fails before the model loads
        reader = FrameReader(cfg.source, cfg.queue_size, cfg.vid_stride, interrupted)
        try:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            detector = detector or load_detector(cfg)
            return _run(cfg, reader, detector, interrupted, consumer)
        finally:
            reader.close()
            torch.set_num_threads(threads)


def _run(cfg: DictConfig, reader: FrameReader, detector: Detector, interrupted: threading.Event,
         consumer: ResultConsumer | None) -> dict[str, Any]:
    output_dir, device = Path(cfg.output_dir), detector.device
    media = open_media_writer(reader, output_dir) if cfg.save else None
    source_frames = -(-reader.frame_count // reader.vid_stride) if reader.frame_count else None
    total = min(filter(None, [source_frames, cfg.max_frames]), default=None)
    tracker = Tracker(OmegaConf.to_container(cfg.tracker), reader.frame_rate) if cfg.get("tracker") else None
    counter = zone_counter(cfg.get("zones"), tracker, reader.fps)
    writer = ResultWriter(output_dir, media, cfg.save_txt, reader.kind != "images", tracker is not None, cfg.show,
                          cfg.verbose, total, consumer, CountingSink(output_dir, counter) if counter else None)
    worker = BackgroundWorker(writer.write, cfg.queue_size, threaded=not cfg.show)  # HighGUI wants one thread
    frames, stopped_by, sizes = 0, "end of input" if reader.frame_count else "stream closed", None
    run_start = time.perf_counter()
    measure_start = previous_start = frame_interval_ms = None
    bar = tqdm(total=total, unit="frame", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for result in detector.stream(reader, tracker=tracker, zones=counter):
            warmup = frames < cfg.warmup_frames
            if not warmup and measure_start is None:
                measure_start = result.started
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
            if sizes is None:
                input_size = detector.backend.input_size
                sizes = (result.image.shape[:2], *(input_size(*result.image.shape[:2]) if input_size else (None, None)))
            if previous_start is not None:  # the overlay's FPS: a moving average of the frame interval
                interval = (result.started - previous_start) * 1000.0
                frame_interval_ms = interval if frame_interval_ms is None else 0.9 * frame_interval_ms + 0.1 * interval
            previous_start = result.started
            overlay = [f"{1000.0 / frame_interval_ms:.1f} FPS" if frame_interval_ms else "- FPS",
                       f"{result.ms['preprocess'] + result.ms['model'] + result.ms['postprocess']:.1f} ms detect"]
            worker.submit((result, warmup, overlay, cuda_memory_mb(device)))
            frames += 1
            bar.update()
            if cfg.max_frames is not None and frames >= cfg.max_frames:
                stopped_by = "max_frames"
                break
            if writer.quit_requested:
                stopped_by = "window closed"
                break
        if interrupted.is_set():
            stopped_by = "interrupted"
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        bar.close()
        try:
            worker.close()
        finally:
            if media is not None:
                media.close()  # the video is playable from here on
            writer.close()
    end = time.perf_counter()

    measured = frames - min(frames, cfg.warmup_frames)
    measured_s = end - measure_start if measure_start is not None else float("nan")
    vram = cuda_memory_mb(device)
    summary = finite({
        "source": str(cfg.source), "source_kind": reader.kind, "device": device_name(device),
        "backend": detector.backend.name, "model": detector.backend.description,
        "classes": detector.backend.classes.names,
        "frame_size": list(sizes[0]) if sizes else None,
        "network_input_size": list(sizes[1]) if sizes and sizes[1] else None,
        "padded_input_size": list(sizes[2]) if sizes and sizes[2] else None,
        "precision": cfg.precision, "channels_last": bool(cfg.channels_last), "compile": bool(cfg.compile),
        "vid_stride": cfg.vid_stride, "frames": frames, "warmup_frames": frames - measured, "measured_frames": measured,
        "corrupt_frames": reader.corrupt, "corrupt": reader.corrupt_names[:20], "dropped_frames": reader.dropped,
        "stopped_by": stopped_by, "detections": writer.detections,
        **({"tracker": tracker.name, "tracks": len(tracker.track_ids)} if tracker else {}),
        **({"zones": counter.summary(detector.classes), "events": writer.counting.events} if counter else {}),
        "stages_ms": {stage: summarize(values) for stage, values in writer.samples.items()},
        "warmup_model_ms": writer.warmup_model_ms,
        "throughput_fps": measured / measured_s if measured else float("nan"),
        "measured_wall_s": measured_s, "total_wall_s": end - run_start,
        "peak_vram_allocated_mb": vram.get("peak_allocated"), "peak_vram_reserved_mb": vram.get("peak_reserved"),
        "peak_rss_mb": peak_rss_mb(),
        "outputs": {"media": str(media.path) if media else None, "detections": str(writer.json.path),
                    "frames": str(writer.csv.path), "labels": str(writer.txt.path) if writer.txt else None,
                    **({"tracks": str(writer.tracks.path)} if tracker else {}),
                    **({"events": str(writer.counting.path),
                        "occupancy": str(writer.counting.occupancy_path) if writer.counting.occupancy_path else None}
                       if counter else {}),
                    "summary": str(output_dir / "summary.json")},
    })
    if cfg.track_gt is not None:
        summary["tracking_metrics"] = evaluate_tracking(cfg.track_gt, writer.tracks.path, output_dir,
                                                        last_frame=writer.last_frame + 1)
        if counter is not None:
            summary["counting_error"] = counting_error(cfg.track_gt, counter.spec, summary["zones"]["lines"],
                                                       writer.last_frame)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary), flush=True)
    return summary
