"""The micro-batcher: requests queue their decoded image; ONE worker thread (the model is not thread-safe, and
torch uses every core anyway) takes up to `max_batch` of them, waiting at most `max_wait_ms` after the first for
others to join, and runs them in one `Detector.predict_frames` call, off the event loop. Each result is then cut
to its request's own filters. `max_batch=1` serves one request at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from detect.data.sources.reader import Frame
from detect.inference.detector import Detector
from detect.serve.metrics import ServerMetrics
from detect.serve.upload import Options, RequestError
from detect.structures import Result


@dataclasses.dataclass(frozen=True)
class Pending:
    """A queued request: its frame, its filters, when it was queued and the future its handler awaits."""

    frame: Frame
    options: Options
    queued: float
    future: Future[tuple[Result, int]]


class Batcher:
    """Queues requests (`submit`) for the worker thread that batches them into model calls."""

    def __init__(self, detector: Detector, max_batch: int, max_wait_ms: float, max_queue: int) -> None:
        self.detector = detector
        self._sliced: dict[tuple[int, int], Detector] = {}  # per slice size asked for (?slice=...)
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000.0
        self.metrics = ServerMetrics(self.queue_length)
        self._queue: queue.Queue[Pending | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None

    def queue_length(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the worker after the batch it runs; requests still queued are cancelled."""
        if self._thread is None:
            return
        while True:  # make room for the sentinel, cancelling what waits
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                pending = self._queue.get_nowait()
                if pending is not None:
                    pending.future.cancel()
        self._thread.join()
        self._thread = None

    async def submit(self, frame: Frame, options: Options) -> tuple[Result, int]:
        """The request's result (its filters applied) and the size of the batch it ran in; 503 when the queue is
        full. A handler cancelled while it waits (its client gone) drops its request from the batch."""
        future: Future[tuple[Result, int]] = Future()
        try:
            self._queue.put_nowait(Pending(frame, options, time.perf_counter(), future))
        except queue.Full:
            raise RequestError(503, "queue_full", f"the server is busy ({self._queue.maxsize} requests wait for the "
                                                  "model, max_queue); retry shortly") from None
        return await asyncio.wrap_future(future)

    def _next_batch(self) -> list[Pending] | None:
        """Up to `max_batch` requests: the first blocks, the others join until `max_wait_s` after it; None: stop."""
        first = self._queue.get()
        if first is None:
            return None
        batch, deadline = [first], time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                pending = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if pending is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(pending)
        return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [pending for pending in batch if pending.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            for slice_size in dict.fromkeys(pending.options.slice_size for pending in batch):  # one call per size
                self._call([pending for pending in batch if pending.options.slice_size == slice_size], slice_size)

    def _call(self, batch: list[Pending], slice_size: tuple[int, int] | None) -> None:
        """One model call for `batch`, sliced as its requests asked; each future gets its result or the error."""
        started = time.perf_counter()
        try:
            detector = self.detector if slice_size is None else self._sliced.get(slice_size) or \
                self._sliced.setdefault(slice_size, self.detector.sliced({"size": list(slice_size)}))
            results = detector.predict_frames([pending.frame for pending in batch])
        except Exception as error:  # the requests fail (500), the server goes on
            for pending in batch:
                pending.future.set_exception(error)
            return
        self.metrics.batch(len(batch))
        for pending, result in zip(batch, results, strict=True):
            result.ms["queue"] = (started - pending.queued) * 1000.0
            pending.future.set_result((filtered(result, pending.options), len(batch)))


def filtered(result: Result, options: Options) -> Result:
    """`result` cut to a request's score threshold, labels and max_det (the server's filters are applied already)."""
    keep = result.scores >= options.score_threshold
    if options.labels is not None:
        keep &= np.isin(result.labels, sorted(options.labels))
    order = np.flatnonzero(keep)
    if options.max_det is not None:
        order = order[np.argsort(-result.scores[order], kind="stable")[:options.max_det]]
    return dataclasses.replace(result, boxes=result.boxes[order], scores=result.scores[order],
                               labels=result.labels[order])
