"""OpenCV video captures for the frame sources: opening one (a file, a webcam, a stream URL) with a one-line error,
reading a live one with a deadline, and reopening a live one that stopped delivering, with backoff.

A read of a live source runs on its own thread; one that takes longer than the read timeout is abandoned and the
capture is released when that read returns (FFmpeg's own read timeout, set on stream URLs, makes it return), so a
dead stream never holds the reader or its `close()`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from detect.utils.errors import DetectError

# FFmpeg's own lines (a stream that ends, a refused connection) would repeat what the reader says once per gap;
# read when OpenCV first opens a capture with FFmpeg, so set before that; a value set by the user is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
BACKOFF_CAP_S = 30.0  # the longest wait between two reopening attempts (1, 2, 4 ... s up to this)
SKIPPED = np.empty(0, dtype=np.uint8)  # a frame left out by vid_stride: grabbed, never decoded
Read = tuple[bool, np.ndarray | None]  # (a frame came, its pixels: None if it did not decode, SKIPPED if not asked)


@dataclass
class Gap:
    """A live source's outage: after which frame, how long until it delivered again, the frames it would have sent."""

    after_frame: int
    seconds: float
    frames_lost: int | None  # estimated from the source's fps; None when the source reports none
    resumed: bool  # False: reconnect gave up (or the run stopped) before the source came back


def check_reconnect(reconnect: float, read_timeout: float) -> None:
    """reconnect >= 0 and read_timeout > 0 (seconds), or one line naming them."""
    if reconnect < 0 or read_timeout <= 0:
        raise DetectError(f"reconnect={reconnect} must be >= 0 (seconds to keep reopening a live source that drops; "
                          f"0: end at the first drop) and read_timeout={read_timeout} > 0 (seconds)")


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings off while a capture opens: the caller reports a failure in one line."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_capture(target: str | int, what: str, hint: str, timeout_s: float | None = None) -> cv2.VideoCapture:
    """An open capture of `target`, or a DetectError naming `what`; `timeout_s` bounds FFmpeg's open and reads."""
    params = []
    if timeout_s is not None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  int(timeout_s * 1000)]
    with quiet_opencv():
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params) if params else cv2.VideoCapture(target)
    if not capture.isOpened():
        raise DetectError(f"{what} could not be opened; {hint}")
    return capture


def read_frame(capture: cv2.VideoCapture, decode: bool) -> Read:
    """Grab the next frame and, if `decode`, decode it."""
    if not capture.grab():  # the end of the file, or the stream closed
        return False, None
    if not decode:
        return True, SKIPPED
    ok, image = capture.retrieve()
    return True, image if ok else None


class TimedCapture:
    """A live capture whose reads run on a worker thread with a deadline; `read` answers None when one is abandoned
    (past `timeout_s`, or when `stopping()` turns true), after which the capture is released when that read
    returns."""

    def __init__(self, capture: cv2.VideoCapture, timeout_s: float, stopping: Callable[[], bool]) -> None:
        self._capture, self.timeout_s, self._stopping = capture, timeout_s, stopping
        self._lock = threading.Lock()
        self._pending = self._abandoned = False

    def read(self, decode: bool) -> Read | None:
        answer: list[Read] = []

        def work() -> None:
            value = read_frame(self._capture, decode)
            with self._lock:
                answer.append(value)
                self._pending = False
                if self._abandoned:
                    self._capture.release()

        with self._lock:
            self._pending = True
        thread = threading.Thread(target=work, name="capture-read", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.timeout_s
        while thread.is_alive() and time.monotonic() < deadline and not self._stopping():
            thread.join(0.05)
        with self._lock:
            if answer:
                return answer[0]
            self._abandoned = True
        return None

    def get(self, prop: int) -> float:
        return self._capture.get(prop)

    def release(self) -> None:
        """Release now, or when a read still running returns."""
        with self._lock:
            self._abandoned = True
            if not self._pending:
                self._capture.release()


def wait(seconds: float, stopping: Callable[[], bool]) -> bool:
    """Sleep up to `seconds`, waking early when `stopping()`; True if it slept the whole time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stopping():
            return False
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return not stopping()


def backoff(cap_s: float = BACKOFF_CAP_S) -> Iterator[float]:
    """The waits before each reopening attempt: 1, 2, 4 ... s, then `cap_s` each."""
    delay = 1.0
    while True:
        yield min(delay, cap_s)
        delay *= 2


def reopen(open_source: Callable[[], TimedCapture], budget_s: float,
           stopping: Callable[[], bool]) -> TimedCapture | None:
    """`open_source()` after each wait of `backoff()` until it opens; None once `budget_s` seconds have passed
    without success (the last attempt at the end of the budget) or `stopping()`."""
    start = time.monotonic()
    for delay in backoff():
        left = budget_s - (time.monotonic() - start)
        if left <= 0 or not wait(min(delay, left), stopping):
            return None
        try:
            return open_source()
        except DetectError:
            pass
