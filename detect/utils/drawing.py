"""Drawing with OpenCV, in place on BGR uint8 frames: boxes with class name and score, and a text overlay."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
# Distinct BGR colours; label i gets PALETTE[i % len(PALETTE)].
PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203)]
UNTRACKED = (160, 160, 160)


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """`text` in white on a filled `color` box whose bottom-left corner is (x, y), kept inside the image."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    y = max(y, height + baseline)
    cv2.rectangle(image, (x, y - height - baseline), (x + width, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - baseline), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int], scores: Sequence[float] | None,
                    names: Sequence[str], track_ids: Sequence[int] | None = None) -> None:
    """Draw xyxy `boxes` (input pixels) with "name score" labels (the name alone without `scores`: ground truth);
    label `i` is named `names[i - 1]`. With `track_ids`, a box has its track's colour and "#id" beside the name
    (boxes without a track, -1, are grey)."""
    scale = max(0.4, min(image.shape[:2]) / 1200)
    thickness = max(1, round(min(image.shape[:2]) / 400))
    ids = [None] * len(boxes) if track_ids is None else [int(i) for i in track_ids]
    scores = [None] * len(boxes) if scores is None else scores
    for (x1, y1, x2, y2), label, score, track_id in zip(np.round(boxes).astype(int), labels, scores, ids,
                                                         strict=True):
        track = f" #{track_id}" if track_id is not None and track_id >= 0 else ""
        text = names[int(label) - 1] + track + (f" {score:.2f}" if score is not None else "")
        color = PALETTE[int(label) % len(PALETTE)] if track_id is None else track_color(track_id)
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), color, thickness)
        _label(image, text, int(x1), int(y1), color, scale)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable colour per track id; grey for -1 (no confirmed track)."""
    return UNTRACKED if track_id < 0 else PALETTE[(track_id * 7) % len(PALETTE)]


class TrackTrails:
    """The last `length` box centres of each track in the frame, drawn as a polyline in the track's colour (a track
    missing from a frame loses its trail, so memory stays bounded)."""

    def __init__(self, length: int = 30) -> None:
        self.length = length
        self.centers: dict[int, deque[tuple[int, int]]] = {}

    def draw(self, image: np.ndarray, boxes: np.ndarray, track_ids: Sequence[int]) -> None:
        present = {}
        for (x1, y1, x2, y2), track_id in zip(boxes, track_ids, strict=True):
            if track_id >= 0:
                trail = self.centers.get(int(track_id)) or deque(maxlen=self.length)
                trail.append((int((x1 + x2) / 2), int((y1 + y2) / 2)))
                present[int(track_id)] = trail
        self.centers = present
        thickness = max(1, round(min(image.shape[:2]) / 400))
        for track_id, trail in self.centers.items():
            if len(trail) > 1:
                cv2.polylines(image, [np.array(trail, dtype=np.int32)], False, track_color(track_id), thickness)


def draw_overlay(image: np.ndarray, lines: Sequence[str]) -> None:
    """Lines of text (e.g. FPS and latency) in the top-left corner on a dark background."""
    scale = max(0.5, min(image.shape[:2]) / 900)
    _, line_height = cv2.getTextSize("Ag", FONT, scale, 1)[0]
    for i, text in enumerate(lines):
        _label(image, text, 4, 4 + (i + 1) * (line_height + 10), (32, 32, 32), scale)
