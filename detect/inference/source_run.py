"""One source of infer.py's run: its reader, its tracker, its outputs (drawn and written on a background thread by
writer.py) and its counters, which become its row of the summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from detect.data.sources.reader import FrameReader
from detect.inference.detector import Detector
from detect.inference.events import CountingSink
from detect.inference.result_writer import ResultConsumer, ResultWriter
from detect.inference.sinks import open_media_writer
from detect.inference.summary import finite
from detect.inference.worker import BackgroundWorker
from detect.structures import Result
from detect.tracking.counting import zone_counter
from detect.tracking.trackers import Tracker
from detect.utils.device import device_name
from detect.utils.timing import cuda_memory_mb, peak_rss_mb, reset_cuda_peaks, summarize


def source_folders(readers: list[FrameReader], output_dir: Path) -> list[Path]:
    """Where each source's outputs go: `output_dir` itself for one source, else a folder per source named after it
    (its file or stream name; -2, -3 ... where two share a name)."""
    if len(readers) == 1:
        return [output_dir]
    folders, seen = [], {}
    for reader in readers:
        stem = Path(reader.name).stem or reader.kind
        seen[stem] = seen.get(stem, 0) + 1
        folders.append(output_dir / (stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"))
    return folders


class SourceRun:
    """Takes a source's results in order (`submit`), hands them to its writer, and sums up the source (`summary`)."""

    def __init__(self, cfg: DictConfig, reader: FrameReader, output_dir: Path, consumer: ResultConsumer | None) -> None:
        self.cfg, self.reader, self.output_dir = cfg, reader, output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        self.media = open_media_writer(reader, output_dir) if cfg.save else None
        source_frames = -(-reader.frame_count // reader.vid_stride) if reader.frame_count else None
        self.total = min(filter(None, [source_frames, cfg.max_frames]), default=None)
        self.tracker = Tracker(OmegaConf.to_container(cfg.tracker), reader.frame_rate) if cfg.get("tracker") else None
        self.counter = zone_counter(cfg.get("zones"), self.tracker, reader.fps)
        self.writer = ResultWriter(output_dir, self.media, cfg.save_txt, reader.kind != "images",
                                   self.tracker is not None, cfg.show, cfg.verbose, self.total,
                                   f"detect {reader.name}", consumer,
                                   counting=CountingSink(output_dir, self.counter) if self.counter else None,
                                   slicing=cfg.slice.size is not None)
        self.worker = BackgroundWorker(self.writer.write, cfg.queue_size, threaded=not cfg.show)  # HighGUI: 1 thread
        self.frames, self.stopped_by = 0, None
        self.sizes: tuple | None = None  # (frame HxW, network input HxW, padded HxW)
        self.measure_start = self.measure_end = self.previous_start = self.frame_interval_ms = None

    def submit(self, result: Result, detector: Detector) -> None:
        """Hand `result` to the writer with its warm-up flag and overlay; stop the source at max_frames."""
        warmup = self.frames < self.cfg.warmup_frames
        if not warmup and self.measure_start is None:
            self.measure_start = result.started
            reset_cuda_peaks(detector.device)
        if self.sizes is None:
            input_size = detector.backend.input_size
            height, width = result.image.shape[:2]
            self.sizes = ((height, width), *(input_size(height, width) if input_size else (None, None)))
        if self.previous_start is not None:  # the overlay's FPS: a moving average of the frame interval
            interval = (result.started - self.previous_start) * 1000.0
            self.frame_interval_ms = interval if self.frame_interval_ms is None else (
                0.9 * self.frame_interval_ms + 0.1 * interval)
        self.previous_start = result.started
        overlay = [f"{1000.0 / self.frame_interval_ms:.1f} FPS" if self.frame_interval_ms else "- FPS",
                   f"{sum(ms for stage, ms in result.ms.items() if stage != 'decode'):.1f} ms detect"]
        self.worker.submit((result, warmup, overlay, cuda_memory_mb(detector.device)))
        self.frames += 1
        self.measure_end = time.perf_counter()
        if self.cfg.max_frames is not None and self.frames >= self.cfg.max_frames:
            self.stopped_by = "max_frames"
            self.reader.stop()

    def close(self) -> None:
        """Wait for the writer, then finalize the files (the video is playable from here on)."""
        try:
            self.worker.close()
        finally:
            if self.media is not None:
                self.media.close()
            self.writer.close()

    def ended_by(self, run_stopped_by: str | None) -> str:
        """Why this source ended: max_frames, the run's stop (Ctrl-C, the window), its error, or its input."""
        if self.stopped_by or run_stopped_by:
            return self.stopped_by or run_stopped_by
        if self.reader.failure:
            return f"error: {self.reader.failure}"
        if self.reader.gaps and not self.reader.gaps[-1].resumed:
            return f"stream closed (reconnect gave up after {self.reader.gaps[-1].seconds:.1f} s)"
        return "end of input" if self.reader.frame_count else "stream closed"

    def summary(self, detector: Detector, run_stopped_by: str | None, total_wall_s: float) -> dict[str, Any]:
        """This source's summary.json: what ran on what, its frames and gaps, stage statistics, throughput, memory."""
        cfg, reader, writer, backend = self.cfg, self.reader, self.writer, detector.backend
        measured = self.frames - min(self.frames, cfg.warmup_frames)
        measured_s = self.measure_end - self.measure_start if self.measure_start is not None else float("nan")
        vram = cuda_memory_mb(detector.device)
        gaps = [gap for gap in reader.gaps if gap.resumed]  # an outage the source never came back from ended it
        return finite({
            "source": reader.source, "source_kind": reader.kind, "device": device_name(detector.device),
            "backend": backend.name, "model": backend.description, "classes": backend.classes.names,
            "frame_size": list(self.sizes[0]) if self.sizes else None,
            "network_input_size": list(self.sizes[1]) if self.sizes and self.sizes[1] else None,
            "padded_input_size": list(self.sizes[2]) if self.sizes and self.sizes[2] else None,
            "precision": backend.precision, "channels_last": bool(cfg.channels_last), "compile": bool(cfg.compile),
            "vid_stride": cfg.vid_stride, "frames": self.frames, "warmup_frames": self.frames - measured,
            "measured_frames": measured, "corrupt_frames": reader.corrupt, "corrupt": reader.corrupt_names[:20],
            "dropped_frames": reader.dropped, "gaps": len(gaps), "seconds_lost": sum(gap.seconds for gap in gaps),
            "frames_lost": sum(gap.frames_lost or 0 for gap in gaps), "resized_frames": reader.resized,
            "stopped_by": self.ended_by(run_stopped_by), "detections": writer.detections,
            **({"slice": OmegaConf.to_container(cfg.slice)} if cfg.slice.size is not None else {}),
            **({"tta": OmegaConf.to_container(cfg.tta)} if cfg.tta.flip or cfg.tta.sizes else {}),
            **({"tracker": self.tracker.name, "tracks": len(self.tracker.track_ids)} if self.tracker else {}),
            **({"zones": self.counter.summary(), "events": writer.counting.events}
               if self.counter else {}),
            "stages_ms": {stage: summarize(values) for stage, values in writer.samples.items()},
            "warmup_model_ms": writer.warmup_model_ms,
            "throughput_fps": measured / measured_s if measured else float("nan"),
            "measured_wall_s": measured_s, "total_wall_s": total_wall_s,
            "peak_vram_allocated_mb": vram.get("peak_allocated"), "peak_vram_reserved_mb": vram.get("peak_reserved"),
            "peak_rss_mb": peak_rss_mb(),
            "outputs": {"media": str(self.media.path) if self.media else None, "detections": str(writer.json.path),
                        "frames": str(writer.csv.path), "labels": str(writer.txt.path) if writer.txt else None,
                        **({"tracks": str(writer.tracks.path)} if self.tracker else {}),
                        **({"events": str(writer.counting.path), "occupancy": str(writer.counting.occupancy_path)
                            if writer.counting.occupancy_path else None} if self.counter else {}),
                        "summary": str(self.output_dir / "summary.json")},
        })
