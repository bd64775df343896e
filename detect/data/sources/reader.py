"""Frame sources decoded on a background thread.

A source is an image, a folder of images, a glob of images, a video file, a webcam index (`0`) or a stream URL
(`rtsp://`, `http://`, ...). `FrameReader` decodes it into a bounded queue so that decoding overlaps the model; a live
source (webcam, stream) that stops delivering is reopened (capture.py) for up to `reconnect` seconds.
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detect.data.sources.capture import (
    SKIPPED,
    Gap,
    Read,
    TimedCapture,
    check_reconnect,
    open_capture,
    read_frame,
    reopen,
)
from detect.data.sources.paths import SOURCE_HELP, list_images
from detect.utils.errors import DetectError

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
END = object()  # FrameReader.get: the source has ended


@dataclass
class Frame:
    """One decoded frame: its number in the source (from 0; skipped frames keep theirs) and BGR uint8 pixels."""

    index: int
    name: str  # the image's path below the folder or glob root, or the video's / stream's name
    image: np.ndarray  # HxWx3 uint8 BGR
    decode_ms: float


class FrameReader:
    """Decodes a source on a background thread into a queue of at most `queue_size` frames; iterate for Frames.

    A frame that does not decode is skipped and counted in `corrupt`. A live source (webcam, or a stream without a
    frame count) is never held back by a slow consumer: when the queue is full its oldest frame is dropped and
    counted in `dropped`, so the frames processed stay recent. A live source that stops delivering (or whose read
    hangs past `read_timeout` s) is reopened 1, 2, 4 ... s later for up to `reconnect` s (0: it ends there); each
    gap is logged once and kept in `gaps`, and frames that come back at another size are resized to the first's
    (counted in `resized`). Of a video, webcam or stream only every `vid_stride`-th frame is decoded (the others are
    grabbed and skipped; frames keep their index). Iteration ends at the end of the input, when a stream closes for
    good, after `stop()` or when `stop_event` is set. `ready` (an event several readers share) is set at each new
    frame; `failure` says why a reader that ended on an error ended (several sources: the others run on).
    """

    def __init__(self, source: str | int, queue_size: int = 8, vid_stride: int = 1,
                 stop_event: threading.Event | None = None, reconnect: float = 0.0, read_timeout: float = 10.0,
                 ready: threading.Event | None = None) -> None:
        source = str(source)
        if vid_stride < 1:
            raise DetectError(f"vid_stride={vid_stride} must be >= 1 (1 processes every frame)")
        check_reconnect(reconnect, read_timeout)
        self.source, self.vid_stride, self.reconnect, self.read_timeout = source, vid_stride, reconnect, read_timeout
        self._stop, self._stop_event = threading.Event(), stop_event
        listed = list_images(source)
        self.images, self.image_root = listed if listed is not None else (None, None)
        self.capture: cv2.VideoCapture | TimedCapture | None = None
        if self.images is not None:
            self.name, self.kind, self.fps = source, "images", 0.0
            self.frame_count: int | None = len(self.images)
        else:
            if source.isdigit():
                self.name, self.kind = f"webcam{source}", "webcam"
            elif source.lower().startswith(STREAM_PREFIXES):
                self.name, self.kind = source.split("://", 1)[1].split("?")[0].rstrip("/").rsplit("/", 1)[-1], "stream"
            elif Path(source).is_file():
                self.name, self.kind = Path(source).name, "video"
            else:
                raise DetectError(f"source {source} does not exist; {SOURCE_HELP}")
            capture = self._open()
            self.fps = capture.get(cv2.CAP_PROP_FPS)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 and self.kind != "webcam" else None
            self.capture = capture if self.frame_count else TimedCapture(capture, read_timeout, self._stopping)
        self.live = self.kind != "images" and self.frame_count is None
        self.corrupt = self.dropped = self.resized = 0
        self.corrupt_names: list[str] = []
        self.gaps: list[Gap] = []
        self.frame_size: tuple[int, int] | None = None  # (height, width) of the first frame of a capture
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=max(1, queue_size))
        self.ready = ready
        self.failure: str | None = None
        self.reconnecting = False  # a live source is being reopened after a drop (detect.serve's page says so)
        self._ended = False
        self._delivered_at = time.monotonic()  # when the live source last delivered a frame
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self._thread.start()

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "webcam":
            return open_capture(int(self.source), f"webcam {self.source}", "check that a camera is connected "
                                "(ls /dev/video*) and that no other program uses it")
        if self.kind == "stream":
            return open_capture(self.source, f"stream {self.source}", "check the URL, that the server is up and "
                                "that this OpenCV build (FFmpeg) reads its protocol", self.read_timeout)
        return open_capture(self.source, f"video {self.source}", "check that it is a video file OpenCV's FFmpeg "
                            "reads (mp4, avi, mkv, ...) and not truncated")

    def _put(self, item: Frame | None) -> None:
        if self.live:
            while True:
                try:
                    self._queue.put_nowait(item)
                    break
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        else:
            while not self._stopping():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    pass
        if self.ready is not None:
            self.ready.set()

    def _read(self, index: int, decode: bool) -> Read:
        """The next frame of the capture; a live source that stops is reopened (a gap) while `reconnect` allows."""
        if not isinstance(self.capture, TimedCapture):
            return read_frame(self.capture, decode)
        while (read := self.capture.read(decode)) is None or not read[0]:
            self.capture.release()
            if self.reconnect <= 0 or self._stopping():
                return False, None
            self.reconnecting = True
            capture = reopen(lambda: TimedCapture(self._open(), self.read_timeout, self._stopping), self.reconnect,
                             self._stopping)
            self.reconnecting = False
            seconds = time.monotonic() - self._delivered_at  # from the last frame: a hung read's wait counts
            if capture is None and self._stopping():  # the run ended meanwhile (Ctrl-C): no gap to report
                return False, None
            self.gaps.append(Gap(index - 1, seconds, round(seconds * self.fps) if self.fps > 0 else None,
                                 capture is not None))
            state = f"back after {seconds:.1f} s" if capture else f"gave up after {seconds:.1f} s (reconnect)"
            tqdm.write(f"{self.kind} {self.source}: no frame after frame {index - 1}; {state}", file=sys.stderr)
            if capture is None:
                return False, None
            self.capture = capture
        self._delivered_at = time.monotonic()
        return read

    def _decode(self) -> Iterator[tuple[str, np.ndarray | None, float]]:
        """(name, BGR pixels, None when the frame does not decode or SKIPPED by the stride, decode ms) until the
        input ends."""
        if self.images is not None:
            for path in self.images:
                start = time.perf_counter()
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                yield path.relative_to(self.image_root).as_posix(), image, (time.perf_counter() - start) * 1000.0
            return
        for index in itertools.count():
            start = time.perf_counter()
            ok, image = self._read(index, index % self.vid_stride == 0)
            if not ok:
                return
            yield self.name, self._same_size(image), (time.perf_counter() - start) * 1000.0

    def _same_size(self, image: np.ndarray | None) -> np.ndarray | None:
        """A capture's frame at the first frame's size: a stream that comes back at another resolution is resized."""
        if image is None or image.size == 0:
            return image
        if self.frame_size is None:
            self.frame_size = image.shape[:2]
        elif image.shape[:2] != self.frame_size:
            if not self.resized:
                tqdm.write(f"{self.kind} {self.source}: frames now {image.shape[1]}x{image.shape[0]}, resized to the "
                           f"first's {self.frame_size[1]}x{self.frame_size[0]}", file=sys.stderr)
            self.resized += 1
            image = cv2.resize(image, self.frame_size[::-1])
        return image

    def _run(self) -> None:
        try:
            for index, (name, image, decode_ms) in enumerate(self._decode()):
                if self._stopping():
                    break
                if image is SKIPPED:
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

    def get(self, timeout: float) -> Frame | object | None:
        """The next frame, None if none came within `timeout` s, or END; raises the decoding thread's error."""
        if not self._ended and not self._stopping():
            try:
                frame = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
            if frame is not None:
                return frame
        self._ended = True
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return END

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get(0.1)) is not END:
            if frame is not None:
                yield frame

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
        """Stop decoding and release the capture (a live read that hangs is abandoned and released when it returns)."""
        self.stop()
        self._thread.join(timeout=5.0)
        if self.capture is not None and not self._thread.is_alive():
            self.capture.release()
