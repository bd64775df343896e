"""The outputs of counting zones, written as frames come (infer.py's writer thread): the zones drawn on the frame,
events.jsonl (one JSON object a line per crossing, entry and exit: source, frame, time, track_id, class, zone,
direction) and, with polygons, occupancy.csv (tracks inside each polygon per frame)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from detect.structures import Result
from detect.tracking.counting import ZoneCounter


class CountingSink:
    """Draws `counter`'s zones on each result and writes its events and occupancy into `output_dir`."""

    def __init__(self, output_dir: Path, counter: ZoneCounter) -> None:
        self.counter = counter
        output_dir.mkdir(parents=True, exist_ok=True)
        self.path = output_dir / "events.jsonl"
        self.events = 0
        self._file = open(self.path, "w")
        self.polygons = [polygon.name for polygon in counter.spec.polygons]
        self.occupancy_path = output_dir / "occupancy.csv" if self.polygons else None
        self._occupancy_file = open(self.occupancy_path, "w", newline="") if self.occupancy_path else None
        if self._occupancy_file is not None:
            self._occupancy = csv.writer(self._occupancy_file)
            self._occupancy.writerow(["frame", "source", *self.polygons])

    def write(self, result: Result) -> None:
        for event in result.events:
            self._file.write(json.dumps(event) + "\n")
        self.events += len(result.events)
        self._file.flush()
        if self._occupancy_file is not None:
            self._occupancy.writerow([result.frame, result.source,
                                      *(result.counts["polygons"][name]["occupancy"] for name in self.polygons)])

    def close(self) -> None:
        """Write the crossings that the stream's end completes (ZoneCounter.finish), then close the files."""
        final = self.counter.finish()
        self._file.writelines(json.dumps(event) + "\n" for event in final)
        self.events += len(final)
        self._file.close()
        if self._occupancy_file is not None:
            self._occupancy_file.close()
