"""The consumer of infer.py's stream, on the writer thread: draws each result (boxes, track ids and trails, the FPS
overlay), writes it to the sinks and keeps the measured stage times for the summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from detect.inference.events import CountingSink
from detect.inference.sinks import DetectionsJson, FramesCsv, LabelsTxt, MotTracks, timed_stages
from detect.structures import Result
from detect.tracking.counting import ZoneCounter
from detect.utils.drawing import TrackTrails, draw_detections, draw_overlay

ResultConsumer = Callable[[Result, bool], None]  # (result, warmup), called on the writer thread after the files


@dataclass
class ResultWriter:
    """Draws and writes each result as it comes (on the writer thread) and keeps the measured stage times."""

    output_dir: Path
    media: Any  # VideoWriter | ImageWriter | None
    save_txt: bool = False
    per_frame_txt: bool = True
    tracking: bool = False
    show: bool = False
    verbose: bool = False
    frame_count: int | None = None
    window: str = "detect"  # the window's title with show
    consumer: ResultConsumer | None = None
    counting: CountingSink | None = None  # with zones: draws them, writes events.jsonl and occupancy.csv
    slicing: bool = False  # Result.ms has the slice stage
    warmup_model_ms: list[float] = field(default_factory=list)
    detections: int = 0
    last_frame: int = -1  # the source index of the last frame written
    quit_requested: bool = False

    def __post_init__(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.stages = timed_stages(self.tracking, self.slicing)
        self.samples: dict[str, list[float]] = {stage: [] for stage in self.stages}
        self.csv = FramesCsv(self.output_dir / "frames.csv", self.stages)
        self.json = DetectionsJson(self.output_dir / "detections.json")
        self.txt = LabelsTxt(self.output_dir / "labels", self.per_frame_txt) if self.save_txt else None
        self.tracks = MotTracks(self.output_dir / "tracks.txt") if self.tracking else None
        self.trails = TrackTrails() if self.tracking else None

    def write(self, item: tuple[Result, bool, list[str], dict[str, float]]) -> None:
        result, warmup, overlay, vram_mb = item
        start = time.perf_counter()
        if self.media is not None or self.show:  # drawn in place: the stream hands each frame out once
            annotate(result, self.trails, self.counting.counter if self.counting is not None else None)
            draw_overlay(result.image, overlay)
            if self.media is not None:
                self.media.write(result.image, result.source)
            if self.show:
                cv2.imshow(self.window, result.image)
                self.quit_requested = cv2.waitKey(1) & 0xFF in (ord("q"), 27)
        done = time.perf_counter()
        stage_ms = {**result.ms, "draw_write": (done - start) * 1000.0,
                    "end_to_end": result.ms["decode"] + (done - result.started) * 1000.0}
        self.csv.write(result, warmup, stage_ms, vram_mb)
        self.json.write(result)
        if self.txt is not None:
            self.txt.write(result)
        if self.tracks is not None:
            self.tracks.write(result)
        if self.counting is not None:
            self.counting.write(result)
        self.detections += len(result)
        self.last_frame = result.frame
        if warmup:
            self.warmup_model_ms.append(result.ms["model"])
        else:
            for stage in self.stages:
                self.samples[stage].append(stage_ms[stage])
        if self.verbose:
            names = result.names
            counts = ", ".join(f"{names.count(name)} {name}" for name in dict.fromkeys(names)) or "nothing"
            tqdm.write(f"frame {result.frame + 1}/{self.frame_count or '?'} {result.source}: {counts} "
                       f"{stage_ms['end_to_end']:.1f}ms")
        if self.consumer is not None:
            self.consumer(result, warmup)

    def close(self) -> None:
        self.json.close()
        self.csv.close()
        if self.tracks is not None:
            self.tracks.close()
        if self.counting is not None:
            self.counting.close()


def annotate(result: Result, trails: TrackTrails | None, counter: ZoneCounter | None) -> None:
    """Draw on `result.image` itself: the tracks' trails, the boxes with names, scores and ids, the zones with their
    counts (infer.py's video and the server's live view)."""
    if trails is not None:
        trails.draw(result.image, result.boxes, result.track_ids)
    draw_detections(result.image, result.boxes, result.labels, result.scores, result.classes.names, result.track_ids)
    if counter is not None:
        counter.draw(result.image, result.counts)
