"""A background thread that runs a consumer over submitted items in order (the writer of infer.py)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class BackgroundWorker:
    """Calls `work(item)` for each submitted item, in order, on one background thread (or inline if not `threaded`).

    At most `queue_size` items wait; `submit` blocks beyond that. An error in `work` is raised by the next
    `submit` or by `close`.
    """

    def __init__(self, work: Callable[[Any], None], queue_size: int = 8, threaded: bool = True) -> None:
        self._work = work
        self._error: BaseException | None = None
        self._queue: queue.Queue[Any] | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, queue_size))
            self._thread = threading.Thread(target=self._run, name="write", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._work(item)
                except BaseException as error:
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item: Any) -> None:
        self._raise()
        if self._queue is None:
            self._work(item)
        else:
            self._queue.put(item)

    def close(self) -> None:
        """Wait until every submitted item is done."""
        if self._queue is not None:
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()


_DONE = object()
