"""Frame sources decoded on a background thread.

A source is an image, a folder of images, a glob of images, a video file, a webcam index (`0`) or a stream URL
(`rtsp://`, `http://`, ...). `FrameReader` decodes it into a bounded queue so that decoding overlaps the model.
"""

from __future__ import annotations

import glob
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detect.errors import DetectError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_SKIPPED = np.empty(0, dtype=np.uint8)  # a frame left out by vid_stride: grabbed, never decoded
SOURCE_HELP = "pass an image, a folder of images, a glob ('photos/*.jpg'), a video file, a webcam index or a URL"


@dataclass
class Frame:
    """One decoded frame: its number in the source (from 0; skipped frames keep theirs) and BGR uint8 pixels."""

    index: int
    name: str  # the image's file name, or the video's / stream's name
    image: np.ndarray  # HxWx3 uint8 BGR
    decode_ms: float


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings off while a capture opens: the caller reports a failure in one line."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _open_capture(target: str | int, what: str, hint: str) -> cv2.VideoCapture:
    with _quiet_opencv():
        capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        raise DetectError(f"{what} could not be opened; {hint}")
    return capture


def list_images(source: str) -> list[Path] | None:
    """The image files `source` names (an image, a folder's images, a glob's), sorted; None if it names no image."""
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DetectError(f"folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)}); {SOURCE_HELP}")
        return images
    if glob.has_magic(source):
        images = sorted(Path(p) for p in glob.glob(source, recursive=True) if p.lower().endswith(IMAGE_SUFFIXES))
        if not images:
            raise DetectError(f"no images match {source}; {SOURCE_HELP}")
        return images
    return [path] if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() else None


class FrameReader:
    """Decodes a source on a background thread into a queue of at most `queue_size` frames; iterate for Frames.

    A frame that does not decode is skipped and counted in `corrupt`. A live source (webcam, or a stream without a
    frame count) is never held back by a slow consumer: when the queue is full its oldest frame is dropped and
    counted in `dropped`, so the frames processed stay recent. Of a video, webcam or stream only every
    `vid_stride`-th frame is decoded (the others are grabbed and skipped; frames keep their index in the source).
    Iteration ends at the end of the input, when the stream closes, after `stop()` or when `stop_event` is set.
    """

    def __init__(self, source: str | int, queue_size: int = 8, vid_stride: int = 1,
                 stop_event: threading.Event | None = None) -> None:
        source = str(source)
        if vid_stride < 1:
            raise DetectError(f"vid_stride={vid_stride} must be >= 1 (1 processes every frame)")
        self.vid_stride = vid_stride
        self.images = list_images(source)
        self.capture: cv2.VideoCapture | None = None
        if self.images is not None:
            self.name, self.kind, self.fps = source, "images", 0.0
            self.frame_count: int | None = len(self.images)
        else:
            if source.isdigit():
                self.name, self.kind = f"webcam{source}", "webcam"
                self.capture = _open_capture(int(source), f"webcam {source}", "check that a camera is connected "
                                             "(ls /dev/video*) and that no other program uses it")
            elif source.lower().startswith(STREAM_PREFIXES):
                self.name, self.kind = source.split("://", 1)[1].split("?")[0].rstrip("/").rsplit("/", 1)[-1], "stream"
                self.capture = _open_capture(source, f"stream {source}", "check the URL, that the server is up "
                                             "and that this OpenCV build (FFmpeg) reads its protocol")
            elif Path(source).is_file():
                self.name, self.kind = Path(source).name, "video"
                self.capture = _open_capture(source, f"video {source}", "check that it is a video file OpenCV's "
                                             "FFmpeg reads (mp4, avi, mkv, ...) and not truncated")
            else:
                raise DetectError(f"source {source} does not exist; {SOURCE_HELP}")
            self.fps = self.capture.get(cv2.CAP_PROP_FPS)
            count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 and self.kind != "webcam" else None
        self.live = self.kind != "images" and self.frame_count is None
        self.corrupt = 0
        self.corrupt_names: list[str] = []
        self.dropped = 0
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._stop_event = stop_event
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self._thread.start()

    def _put(self, item: Frame | None) -> None:
        if self.live:
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        while not self._stopping():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def _decode(self) -> Iterator[tuple[str, np.ndarray | None, float]]:
        """(name, BGR pixels, None when the frame does not decode or _SKIPPED by the stride, decode ms) until the
        input ends."""
        if self.images is not None:
            for path in self.images:
                start = time.perf_counter()
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                yield path.name, image, (time.perf_counter() - start) * 1000.0
            return
        for index in itertools.count():
            start = time.perf_counter()
            if not self.capture.grab():  # the end of the file, or the stream closed
                return
            if index % self.vid_stride:
                yield self.name, _SKIPPED, 0.0
                continue
            ok, image = self.capture.retrieve()
            yield self.name, image if ok else None, (time.perf_counter() - start) * 1000.0

    def _run(self) -> None:
        try:
            for index, (name, image, decode_ms) in enumerate(self._decode()):
                if self._stopping():
                    break
                if image is _SKIPPED:
                    continue
                if image is None or image.size == 0:
                    self.corrupt += 1
                    self.corrupt_names.append(f"{name}#{index}")
                    continue
                self._put(Frame(index, name, image, decode_ms))
        except BaseException as error:  # handed to the consumer, which raises it
            self._error = error
        finally:
            self._put(None)

    def __iter__(self) -> Iterator[Frame]:
        while not self._stopping():
            try:
                frame = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if frame is None:
                break
            yield frame
        if self._error is not None:
            raise self._error

    @property
    def frame_rate(self) -> float:
        """Frames per second this reader delivers: the source's over vid_stride; 0 when the source does not say."""
        return self.fps / self.vid_stride

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._stop_event is not None and self._stop_event.is_set())

    def stop(self) -> None:
        """Ask the decoding thread and the iteration to end; safe to call from a signal handler."""
        self._stop.set()

    def close(self) -> None:
        """Stop decoding and release the capture (left to the process's exit if a read hangs, e.g. a dead stream)."""
        self.stop()
        self._thread.join(timeout=5.0)
        if self.capture is not None and not self._thread.is_alive():
            self.capture.release()
