"""Multi-object tracking between the detector's results and the sinks, with the `trackers` package (SORT, ByteTrack,
OC-SORT, BoT-SORT). Settings live in configs/tracker/<name>.yaml; a track id is stable across frames, -1 for a box
that no confirmed track holds yet."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import supervision as sv
import trackers
from omegaconf import OmegaConf

from detect.config import CONFIG_DIR
from detect.structures import Result
from detect.utils.errors import DetectError, check_choice, first_line

TRACKER_CLASSES = {"sort": trackers.SORTTracker, "bytetrack": trackers.ByteTrackTracker,
                   "ocsort": trackers.OCSORTTracker, "botsort": trackers.BoTSORTTracker}
USES_FRAMES = ("botsort",)  # camera-motion compensation reads the pixels


def tracker_settings(name: str) -> dict[str, Any]:
    """configs/tracker/<name>.yaml as a dict (its `name` included)."""
    check_choice("tracker", name, TRACKER_CLASSES)
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "tracker" / f"{name}.yaml"))


class Tracker:
    """Gives each result's boxes track ids (`Result.track_ids`) and times it (`Result.ms["track"]`)."""

    def __init__(self, settings: str | Mapping[str, Any], frame_rate: float = 30.0) -> None:
        settings = tracker_settings(settings) if isinstance(settings, str) else dict(settings)
        self.name = settings.pop("name", None)
        check_choice("tracker", self.name, TRACKER_CLASSES)
        try:
            self._tracker = TRACKER_CLASSES[self.name](frame_rate=frame_rate if frame_rate > 0 else 30.0, **settings)
        except (TypeError, ValueError) as error:  # an unknown or out-of-range setting
            raise DetectError(f"tracker={self.name}: {first_line(error, typed=False)}; "
                              f"see configs/tracker/{self.name}.yaml") from None
        self.track_ids: set[int] = set()

    def update(self, result: Result) -> Result:
        """Set `result.track_ids` (one per box, in box order) and `result.ms["track"]`; return `result`."""
        start = time.perf_counter()
        detections = sv.Detections(xyxy=result.boxes.reshape(-1, 4), confidence=result.scores,
                                   class_id=result.labels.astype(int), data={"index": np.arange(len(result))})
        frame = result.image if self.name in USES_FRAMES else None
        tracked = self._tracker.update(detections, frame) if frame is not None else self._tracker.update(detections)
        track_ids = np.full(len(result), -1, dtype=np.int64)
        if len(tracked):  # the tracker may reorder the boxes: its `index` puts them back; ids from 1, as in MOT files
            track_ids[tracked.data["index"]] = np.where(tracked.tracker_id >= 0, tracked.tracker_id + 1, -1)
        result.track_ids = track_ids
        self.track_ids.update(int(i) for i in track_ids if i >= 0)
        result.ms["track"] = (time.perf_counter() - start) * 1000.0
        return result
