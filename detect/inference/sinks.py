"""Where results go, one frame at a time so that memory stays flat: the annotated video or images, detections.json
(COCO results plus frame and source), frames.csv (per-stage milliseconds), with save_txt one labels file per
frame (class index, normalized cx cy w h, score), and with a tracker tracks.txt (MOTChallenge format)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from detect.data.sources.reader import FrameReader
from detect.structures import SLICE_STAGE, STAGES, Result
from detect.utils.errors import DetectError


def timed_stages(tracking: bool = False, slicing: bool = False) -> tuple[str, ...]:
    """frames.csv's and the summary's stages: the Result's (slicing's too with it), the tracker's when there is one,
    drawing and writing."""
    return (*STAGES, *((SLICE_STAGE,) if slicing else ()), *(("track",) if tracking else ()), "draw_write",
            "end_to_end")


def csv_columns(stages: tuple[str, ...]) -> tuple[str, ...]:
    return ("frame", "source", "warmup", *(f"{stage}_ms" for stage in stages), "detections", "vram_allocated_mb",
            "vram_reserved_mb")


class VideoWriter:
    """An mp4 (`mp4v`) at the source's fps (30 when it reports none), opened at the first frame with its size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps if fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray, name: str) -> None:
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise DetectError(f"could not open {self.path} for writing with OpenCV (mp4v); check the folder")
        if (image.shape[1], image.shape[0]) != self._size:  # a stream that changed resolution
            image = cv2.resize(image, self._size)
        self._writer.write(image)

    def close(self) -> None:
        """Finalize the file (it is playable only after this)."""
        if self._writer is not None:
            self._writer.release()


class ImageWriter:
    """Annotated images under `folder` with the input images' names."""

    def __init__(self, folder: Path) -> None:
        self.path = folder

    def write(self, image: np.ndarray, name: str) -> None:
        (self.path / name).parent.mkdir(parents=True, exist_ok=True)  # a recursive glob's names have folders
        if not cv2.imwrite(str(self.path / name), image):
            raise DetectError(f"could not write {self.path / name}; check the folder and the file type")

    def close(self) -> None:
        pass


def open_media_writer(reader: FrameReader, output_dir: Path) -> VideoWriter | ImageWriter:
    """Annotated images in `output_dir/images/` for image sources, else `output_dir/<source name>.mp4`."""
    if reader.kind == "images":
        return ImageWriter(output_dir / "images")
    return VideoWriter(output_dir / f"{Path(reader.name).stem or 'stream'}.mp4", reader.fps)


class DetectionsJson:
    """detections.json: a JSON list of COCO results records with `frame` and `source`, written as frames come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w")
        self._file.write("[")
        self._first = True

    def write(self, result: Result) -> None:
        for record in result.to_coco():
            record.update(frame=result.frame, source=result.source)
            self._file.write(("\n" if self._first else ",\n") + json.dumps(record))
            self._first = False

    def close(self) -> None:
        self._file.write("\n]\n")
        self._file.close()


class FramesCsv:
    """frames.csv: one row per frame with every stage's milliseconds, the detection count and VRAM (GPU)."""

    def __init__(self, path: Path, stages: tuple[str, ...]) -> None:
        self.path, self.stages = path, stages
        self._file = open(path, "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(csv_columns(stages))

    def write(self, result: Result, warmup: bool, stage_ms: dict[str, float], vram_mb: dict[str, float]) -> None:
        self._csv.writerow([result.frame, result.source, int(warmup), *(f"{stage_ms[s]:.3f}" for s in self.stages),
                            len(result), *(f"{vram_mb[k]:.1f}" if vram_mb else "" for k in ("allocated", "reserved"))])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class LabelsTxt:
    """labels/<name>.txt per frame (the image's path without its suffix, or <video stem>_<frame> for a video): a
    line per box with the class index (label - 1, into the model's class names), cx cy w h normalized by the frame
    size, and the score."""

    def __init__(self, folder: Path, per_frame: bool) -> None:
        self.path, self.per_frame = folder, per_frame
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, result: Result) -> None:
        height, width = result.image.shape[:2]
        boxes = result.boxes.astype(np.float64)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2 / (width, height)
        sizes = (boxes[:, 2:] - boxes[:, :2]) / (width, height)
        if self.per_frame:
            name = f"{Path(result.source).stem or 'stream'}_{result.frame}.txt"
        else:
            name = Path(result.source).with_suffix(".txt").as_posix()
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{label - 1} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {score:.5f}" for label, (cx, cy), (w, h), score
                 in zip(result.labels.tolist(), centers.tolist(), sizes.tolist(), result.scores.tolist())]
        (self.path / name).write_text("".join(line + "\n" for line in lines))

    def close(self) -> None:
        pass


class MotTracks:
    """tracks.txt in MOTChallenge format: `frame,id,x,y,w,h,score,-1,-1,-1` per box of a confirmed track, frames
    counted from 1 (the source's frame index + 1)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w")

    def write(self, result: Result) -> None:
        for (x1, y1, x2, y2), score, track_id in zip(result.boxes.tolist(), result.scores.tolist(),
                                                     result.track_ids.tolist(), strict=True):
            if track_id >= 0:
                self._file.write(f"{result.frame + 1},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                                 f"{score:.4f},-1,-1,-1\n")

    def close(self) -> None:
        self._file.close()
