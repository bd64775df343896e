"""The live view's sources: decoded once on one thread whatever the number of viewers, detected with the server's
model, tracked and counted as infer.py does, each frame drawn and JPEG-encoded once. Viewers read the latest frame,
the sources' states and counts (`status`), and subscribe to the counting events (`subscribe`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from detect.data.sources.paths import parse_sources
from detect.data.sources.reader import FrameReader
from detect.inference.detector import Detector
from detect.inference.result_writer import annotate
from detect.structures import Result
from detect.tracking.counting import ZoneCounter, zone_counter
from detect.tracking.trackers import Tracker
from detect.utils.drawing import TrackTrails
from detect.utils.errors import DetectError, first_line

STALE_S = 2.0  # a live source with no frame for this long shows "reconnecting" (before its read times out)
EVENT_QUEUE = 256  # counting events held for one /events client; a client that falls behind loses the oldest
RECENT_EVENTS = 50  # the last events, which a new /events client gets first
QUEUE_SIZE = 2  # frames decoded ahead: a camera's oldest is dropped when the model falls behind, latency stays low


@dataclass
class SourceView:
    """What viewers see of one source: its latest annotated frame (JPEG), its state and its counts."""

    name: str
    state: str = "starting"  # starting | live | ended | failed ("reconnecting" is read off the reader: `status`)
    jpeg: bytes | None = None
    sequence: int = 0  # +1 at each new JPEG
    frame: int = -1
    counts: dict[str, Any] | None = None
    error: str | None = None
    updated: float = field(default_factory=time.monotonic)


class LiveHub:
    """`sources` (as infer.py's `source`) run through a detector on one background thread, with a tracker and zone
    counter each when `tracker` / `zones` are given; a video file plays at its frame rate, like a camera. `open`
    the sources (before the model loads: a bad source fails first), then `start(detector)`, then `close`."""

    def __init__(self, sources: str | int | Sequence[str | int], tracker: str | Mapping[str, Any] | None = None,
                 zones: str | Mapping[str, Any] | None = None, reconnect: float = 60.0, read_timeout: float = 10.0,
                 jpeg_quality: int = 80) -> None:
        self.tracker, self.zones = tracker, zones
        self.sources = parse_sources(sources)
        self.reconnect, self.read_timeout, self.jpeg_quality = reconnect, read_timeout, jpeg_quality
        self.views = [SourceView(str(source)) for source in self.sources]
        self.readers: list[FrameReader | None] = []
        self._stop = threading.Event()
        self._subscribers: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._notices: dict[int, tuple[tuple[int, str], bytes]] = {}

    def open(self) -> None:
        """Open every source: one that does not open shows as failed; none opening raises."""
        for view, source in zip(self.views, self.sources):
            try:
                reader = FrameReader(source, QUEUE_SIZE, 1, self._stop, self.reconnect, self.read_timeout)
                view.name = reader.name
            except DetectError as error:
                reader, view.state, view.error = None, "failed", str(error)
            self.readers.append(reader)
        if not any(self.readers):
            raise DetectError("no source of the live view opened: " + "; ".join(view.error for view in self.views))

    def start(self, detector: Detector) -> None:
        """Detect, track and count the opened sources on a background thread."""
        self._thread = threading.Thread(target=self._run, args=(detector,), name="live-view", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop decoding and detecting; the sources are released."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        for reader in self.readers:
            if reader is not None:
                reader.close()

    def _run(self, detector: Detector) -> None:
        opened = [index for index, reader in enumerate(self.readers) if reader is not None]
        readers = [self.readers[index] for index in opened]
        trackers = [Tracker(self.tracker, reader.frame_rate) if self.tracker else None for reader in readers]
        counters = [zone_counter(self.zones, tracker, reader.fps) for tracker, reader in zip(trackers, readers)]
        trails = [TrackTrails() if tracker else None for tracker in trackers]
        started: dict[int, tuple[float, int]] = {}  # per video file: (wall time, frame) of its first frame
        try:
            for result in detector.stream(readers, tracker=trackers, zones=counters, stop_event=self._stop):
                index = opened[result.source_index]
                self._pace(self.readers[index], result.frame, started.setdefault(index, (time.monotonic(),
                                                                                          result.frame)))
                self._show(index, result, trails[result.source_index], counters[result.source_index])
        except Exception as error:  # noqa: BLE001 - shown on the page and in /live/sources, the server serves on
            for view in self.views:
                view.state, view.error = "failed", first_line(error)
        for counter in counters:
            for event in counter.finish() if counter is not None else ():
                self._publish(event)
        for index, reader in zip(opened, readers):
            view = self.views[index]
            if view.state != "failed":
                view.state, view.error = ("failed", reader.failure) if reader.failure else ("ended", None)

    @staticmethod
    def _pace(reader: FrameReader, frame: int, first: tuple[float, int]) -> None:
        """Hold a video file's frame until its time: the page shows it at the file's frame rate."""
        if not reader.live and reader.fps > 0:
            delay = first[0] + (frame - first[1]) / reader.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _show(self, index: int, result: Result, trails: TrackTrails | None, counter: ZoneCounter | None) -> None:
        annotate(result, trails, counter)
        view = self.views[index]
        view.jpeg, view.frame, view.counts = self._encode(result.image), result.frame, result.counts
        view.updated = time.monotonic()
        view.state = "live"
        view.sequence += 1
        for event in result.events or ():
            self._publish(event)

    def state(self, index: int) -> str:
        """live | reconnecting (the source is reopened, or delivered nothing for STALE_S) | starting | ended | failed."""
        view, reader = self.views[index], self.readers[index] if index < len(self.readers) else None
        if view.state == "live" and reader is not None and reader.live and (
                reader.reconnecting or time.monotonic() - view.updated > STALE_S):
            return "reconnecting"
        return view.state

    def status(self) -> list[dict[str, Any]]:
        """Each source's name, state, last frame number, counts and error."""
        return [{"index": index, "name": view.name, "state": self.state(index), "frame": view.frame,
                 "counts": view.counts, "error": view.error} for index, view in enumerate(self.views)]

    def frame(self, index: int) -> tuple[tuple[int, str], bytes | None]:
        """(a key that changes when the picture does, the JPEG to show): the latest frame while live, that frame
        dimmed with the state written on it otherwise."""
        view, state = self.views[index], self.state(index)
        if state == "live" or view.jpeg is None and state == "starting":
            return (view.sequence, state), view.jpeg
        key = (view.sequence, state)
        if self._notices.get(index, (None,))[0] != key:  # drawn once per frame and state, one kept a source
            self._notices[index] = key, self._notice(view, state)
        return key, self._notices[index][1]

    def _notice(self, view: SourceView, state: str) -> bytes:
        image = cv2.imdecode(np.frombuffer(view.jpeg, np.uint8), cv2.IMREAD_COLOR) if view.jpeg else \
            np.zeros((240, 320, 3), np.uint8)
        image = (image * 0.4).astype(np.uint8)
        scale = max(0.5, image.shape[1] / 640)
        cv2.putText(image, state, (10, int(40 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, round(2 * scale)), cv2.LINE_AA)
        return self._encode(image)

    def _encode(self, image: np.ndarray) -> bytes:
        return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])[1].tobytes()

    def subscribe(self) -> tuple[list[dict[str, Any]], asyncio.Queue]:
        """The last RECENT_EVENTS counting events and a queue of those from now on, for the calling event loop;
        `unsubscribe` it when done."""
        events: asyncio.Queue = asyncio.Queue(EVENT_QUEUE)
        with self._lock:
            self._subscribers[events] = asyncio.get_running_loop()
            return list(self.recent), events

    def unsubscribe(self, events: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers.pop(events, None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.recent.append(event)
            targets = list(self._subscribers.items())
        for events, loop in targets:
            try:
                loop.call_soon_threadsafe(_offer, events, event)
            except RuntimeError:  # that client's loop has closed
                self.unsubscribe(events)


def live_context(hub: LiveHub) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan part for `hub`: detect with the app's detector from start-up, close at shut-down."""
    @contextlib.asynccontextmanager
    async def running(app: Any) -> AsyncIterator[None]:
        hub.start(app.state.detector)
        try:
            yield
        finally:
            hub.close()

    return running


def _offer(events: asyncio.Queue, event: dict[str, Any]) -> None:
    """Put `event`, dropping the oldest when the client has fallen EVENT_QUEUE events behind."""
    if events.full():
        events.get_nowait()
    events.put_nowait(event)
