"""Drawing with OpenCV, in place on BGR uint8 frames: boxes with class name and score, and a text overlay."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
# Distinct BGR colours; label i gets PALETTE[i % len(PALETTE)].
PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203)]


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """`text` in white on a filled `color` box whose bottom-left corner is (x, y), kept inside the image."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    y = max(y, height + baseline)
    cv2.rectangle(image, (x, y - height - baseline), (x + width, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - baseline), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int], scores: Sequence[float],
                    names: Sequence[str]) -> None:
    """Draw xyxy `boxes` (input pixels) with "name score" labels; label `i` is named `names[i - 1]`."""
    scale = max(0.4, min(image.shape[:2]) / 1200)
    thickness = max(1, round(min(image.shape[:2]) / 400))
    for (x1, y1, x2, y2), label, score in zip(np.round(boxes).astype(int), labels, scores, strict=True):
        color = PALETTE[int(label) % len(PALETTE)]
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), color, thickness)
        _label(image, f"{names[int(label) - 1]} {score:.2f}", int(x1), int(y1), color, scale)


def draw_overlay(image: np.ndarray, lines: Sequence[str]) -> None:
    """Lines of text (e.g. FPS and latency) in the top-left corner on a dark background."""
    scale = max(0.5, min(image.shape[:2]) / 900)
    _, line_height = cv2.getTextSize("Ag", FONT, scale, 1)[0]
    for i, text in enumerate(lines):
        _label(image, text, 4, 4 + (i + 1) * (line_height + 10), (32, 32, 32), scale)
