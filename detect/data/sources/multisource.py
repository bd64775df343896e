"""Several sources in one process: their readers opened side by side (one that does not open is named in one line
and left out while others run), and their frames interleaved into batches of at most one frame per source."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from detect.data.sources.reader import END, Frame, FrameReader
from detect.utils.errors import DetectError, first_line


@dataclass
class ReaderOptions:
    """How every source of a run is read (see FrameReader)."""

    queue_size: int = 8
    vid_stride: int = 1
    reconnect: float = 0.0
    read_timeout: float = 10.0


def open_readers(sources: Sequence[str | FrameReader], options: ReaderOptions, stop_event: threading.Event | None,
                 ready: threading.Event) -> tuple[list[FrameReader | None], dict[int, str]]:
    """A reader per source (FrameReaders passed in are kept) and, by index, the error of each that did not open.
    One source that does not open raises; of several, each failure is one line on stderr and the others run."""
    readers: list[FrameReader | None] = []
    failed: dict[int, str] = {}
    for index, source in enumerate(sources):
        if isinstance(source, FrameReader):
            source.ready = source.ready or ready
            readers.append(source)
            continue
        try:
            readers.append(FrameReader(source, options.queue_size, options.vid_stride, stop_event, options.reconnect,
                                       options.read_timeout, ready))
        except DetectError as error:
            if len(sources) == 1:
                raise
            tqdm.write(f"error: {error}; the other sources keep running", file=sys.stderr)
            readers.append(None)
            failed[index] = str(error)
    if len(failed) == len(sources):
        raise DetectError(f"none of the {len(sources)} sources opened: " + "; ".join(failed.values()))
    return readers, failed


def interleave(readers: Sequence[FrameReader | None], ready: threading.Event) -> Iterator[list[tuple[int, Frame]]]:
    """Batches of (source index, frame): each source's next frame where one is ready, waiting for at least one,
    until every reader has ended. With several sources, a reader that fails mid-run ends alone (its error in its
    `failure`, one line on stderr); a single source's error is raised."""
    active = [index for index, reader in enumerate(readers) if reader is not None]
    while active:
        ready.clear()  # set again by any reader's next frame, so that no frame is missed while polling
        batch = []
        for index in list(active):
            try:
                frame = readers[index].get(0.0)
            except Exception as error:  # a decode error of one camera ends that camera, not the others
                if len(readers) == 1:
                    raise
                readers[index].failure = first_line(error)
                tqdm.write(f"error: source {readers[index].source} stopped: {readers[index].failure}", file=sys.stderr)
                frame = END
            if frame is END:
                active.remove(index)
            elif frame is not None:
                batch.append((index, frame))
        if batch:
            yield batch
        elif active:
            ready.wait(0.1)
