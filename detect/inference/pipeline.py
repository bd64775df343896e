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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import cv2
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from detect.data.sources.capture import check_reconnect
from detect.data.sources.multisource import ReaderOptions, open_readers
from detect.data.sources.paths import parse_sources
from detect.data.sources.reader import FrameReader
from detect.evaluation.counting import counting_error
from detect.evaluation.mot import evaluate_tracking
from detect.inference.backends import BackendOptions, check_backend, load_backend
from detect.inference.detector import Detector, check_filters
from detect.inference.result_writer import ResultConsumer
from detect.inference.source_run import SourceRun, source_folders
from detect.inference.summary import format_sources, format_summary, sources_summary
from detect.modeling.model import check_model_config
from detect.modeling.slicing import slicer
from detect.modeling.tta import check_resizable, tta_spec
from detect.tracking.counting import zone_counter
from detect.utils.device import resolve_device
from detect.utils.errors import DetectError


def check_infer_config(cfg: DictConfig) -> None:
    """Unset keys, choices and ranges, before any work."""
    if OmegaConf.is_missing(cfg, "source"):
        raise DetectError("source must be set: an image, a folder, a glob, a video file, a webcam index or a URL, "
                          "e.g. source=../shared/data/vtest.avi")
    if cfg.warmup_frames < 0 or cfg.queue_size < 1 or (cfg.max_frames is not None and cfg.max_frames < 1):
        raise DetectError(f"warmup_frames={cfg.warmup_frames} must be >= 0, queue_size={cfg.queue_size} >= 1, "
                          f"max_frames={cfg.max_frames} null or >= 1")
    check_detector_config(cfg)  # vid_stride: the FrameReader, opened before the model
    check_reconnect(cfg.reconnect, cfg.read_timeout)
    zone_counter(cfg.get("zones"), cfg.get("tracker"), 0.0)  # the zones' keys and points, and a tracker for them
    if cfg.track_gt is not None:
        if len(parse_sources(cfg.source)) > 1:
            raise DetectError(f"track_gt={cfg.track_gt} scores one source: run it on one, not a list of sources")
        if cfg.get("tracker") is None or cfg.vid_stride != 1:
            raise DetectError(f"track_gt={cfg.track_gt} needs a tracker (tracker=bytetrack) and every frame "
                              f"(vid_stride=1, not {cfg.vid_stride})")
        if not Path(cfg.track_gt).is_file():
            raise DetectError(f"track_gt={cfg.track_gt} does not exist; pass a MOTChallenge gt.txt")


def check_detector_config(cfg: DictConfig) -> None:
    """The keys `load_detector` reads (infer.yaml's and serve.yaml's): threads, backend and precision, filters,
    slicing, test-time augmentation and the model group, before any work."""
    if cfg.threads is not None and cfg.threads < 1:
        raise DetectError(f"threads={cfg.threads} must be null or >= 1")
    backend = check_backend(cfg.backend, str(cfg.weights) if cfg.weights else None, cfg.precision)
    check_filters(cfg.score_threshold, cfg.max_det)
    slicer(cfg.slice, cfg.batch)
    check_resizable(tta_spec(cfg.tta), backend == "torch")
    check_model_config(cfg.model)


def load_detector(cfg: DictConfig) -> Detector:
    """The Detector of an infer config (weights, backend, model group, precision and filters)."""
    options = BackendOptions(resolve_device(cfg.device), cfg.precision, cfg.channels_last, cfg.compile, cfg.threads,
                             cfg.calibration, cfg.precision_check)
    backend = load_backend(cfg.backend, str(cfg.weights) if cfg.weights else None, cfg.model, options,
                           cfg.model_from_checkpoint)
    classes = list(cfg.classes) if cfg.classes is not None else None
    return Detector(backend, options.device, cfg.score_threshold, classes, cfg.max_det, cfg.batch, cfg.slice, cfg.tta)


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
    """Run the configured detector (or `detector`) over `cfg.source` (one source, or several: a list or a .txt
    file); write the outputs and return the summary.

    `consumer(result, warmup)` also gets every result, after it is written (the benchmarks keep them in memory).
    """
    check_infer_config(cfg)
    if cfg.show:
        check_display()
    threads = torch.get_num_threads()
    sources = parse_sources(cfg.source)
    with _stop_on_sigint() as interrupted:
        # opened first: a bad source fails before the model loads
        options = ReaderOptions(cfg.queue_size, cfg.vid_stride, cfg.reconnect, cfg.read_timeout)
        readers, failed = open_readers(sources, options, interrupted, threading.Event())
        try:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            detector = detector or load_detector(cfg)
            failed_sources = [{"source": sources[index], "error": error} for index, error in failed.items()]
            return _run(cfg, readers, failed_sources, detector, interrupted, consumer)
        finally:
            for reader in readers:
                if reader is not None:
                    reader.close()
            torch.set_num_threads(threads)


def check_display() -> None:
    """show=true needs a display and OpenCV's GUI, or one line saying so."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # OpenCV's Qt build aborts the whole process when it finds no display: say so before it tries
        raise DetectError("show=true needs a display (DISPLAY is not set here); use show=false and watch the "
                          "saved video, or run where a desktop session is")
    try:
        cv2.namedWindow("detect")
    except cv2.error:
        raise DetectError("show=true needs OpenCV with a GUI (opencv-python); this one is headless: "
                          "use show=false and watch the saved video") from None


def _run(cfg: DictConfig, readers: list[FrameReader | None], failed: list[dict[str, str]], detector: Detector,
         interrupted: threading.Event, consumer: ResultConsumer | None) -> dict[str, Any]:
    output_dir = Path(cfg.output_dir)
    opened = [reader for reader in readers if reader is not None]
    folders = source_folders(opened, output_dir)
    runs = [SourceRun(cfg, reader, folder, consumer) for reader, folder in zip(opened, folders)]
    totals = [run.total for run in runs]
    bar = tqdm(total=None if None in totals else sum(totals), unit="frame", disable=not cfg.progress,
               dynamic_ncols=True)
    run_start, stopped_by = time.perf_counter(), None
    with ExitStack() as closing:  # every source's files are finalized, whatever happens
        closing.callback(bar.close)
        for run in runs:
            closing.callback(run.close)
        try:
            for result in detector.stream(opened, tracker=[run.tracker for run in runs],
                                          zones=[run.counter for run in runs]):
                run = runs[result.source_index]
                run.submit(result, detector)
                bar.update()
                if run.writer.quit_requested:
                    stopped_by = "window closed"
                    break
            if interrupted.is_set():
                stopped_by = "interrupted"
        except KeyboardInterrupt:
            stopped_by = "interrupted"
    total_wall_s = time.perf_counter() - run_start
    rows = [run.summary(detector, stopped_by, total_wall_s) for run in runs]
    if cfg.track_gt is not None:
        rows[0]["tracking_metrics"] = evaluate_tracking(cfg.track_gt, runs[0].writer.tracks.path, output_dir,
                                                        last_frame=runs[0].writer.last_frame + 1)
        if runs[0].counter is not None:
            rows[0]["counting_error"] = counting_error(cfg.track_gt, runs[0].counter.spec, rows[0]["zones"]["lines"],
                                                       runs[0].writer.last_frame)
    for run, row in zip(runs, rows):
        (run.output_dir / "summary.json").write_text(json.dumps(row, indent=2) + "\n")
    if len(readers) == 1:
        print(format_summary(rows[0]), flush=True)
        return rows[0]
    summary = sources_summary(rows, failed, total_wall_s)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_sources(summary), flush=True)
    return summary
