"""The types every layer shares: `Classes` (labels, names, dataset ids), `Result` (one image's detections)
and their COCO results form. Imports only numpy and detect.utils."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.utils.drawing import draw_detections


@dataclass
class Classes:
    """Foreground classes: label `i` (1-based; 0 is background) is `names[i-1]` with dataset id `category_ids[i-1]`."""

    names: list[str]
    category_ids: list[int]

    def __len__(self) -> int:
        return len(self.names)


def _float32_array(values: Any) -> np.ndarray:
    """A torch tensor (any device and dtype, bf16 included) or an array-like as a new float32 numpy array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    return np.array(values, dtype=np.float32)


def to_coco_results(outputs: Sequence[dict[str, Any]], image_ids: Sequence[int],
                    category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Model outputs (xyxy boxes in original image pixels, labels 1..K; tensors or arrays) to COCO results
    (xywh, original category ids)."""
    results = []
    for output, image_id in zip(outputs, image_ids):
        boxes = _float32_array(output["boxes"]).reshape(-1, 4)
        boxes[:, 2:] -= boxes[:, :2]
        for box, label, score in zip(boxes.tolist(), output["labels"].tolist(), output["scores"].tolist()):
            results.append({"image_id": int(image_id), "category_id": int(category_ids[label - 1]),
                            "bbox": [round(v, 3) for v in box], "score": round(float(score), 5)})
    return results


STAGES = ("decode", "preprocess", "model", "postprocess")  # the keys of Result.ms
SLICE_STAGE = "slice"  # Result.ms's key with slicing: cutting the slices and merging their boxes


@dataclass
class Result:
    """Detections on one image or frame, in the input's pixels, and the milliseconds each stage took.

    `labels` are 1..K (0 is the background); `names` and `category_ids` (the dataset's own ids) follow them per box.
    `image` is the BGR uint8 frame the boxes refer to. `started` is the `time.perf_counter()` at which the frame
    left the decode queue (the start of its end-to-end time).
    """

    boxes: np.ndarray  # Nx4 float32 xyxy
    scores: np.ndarray  # N float32
    labels: np.ndarray  # N int64
    classes: Classes
    image: np.ndarray
    frame: int = 0
    source: str = ""
    ms: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    track_ids: np.ndarray | None = None  # N int64 with a tracker: stable ids across frames, -1 for unconfirmed boxes
    counts: dict[str, Any] | None = None  # with zones: each line's in / out and each polygon's occupancy so far
    events: list[dict[str, Any]] | None = None  # with zones: this frame's crossings, entries and exits
    source_index: int = 0  # which of the sources of `Detector.stream([...])` the frame came from

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> list[str]:
        return [self.classes.names[label - 1] for label in self.labels.tolist()]

    @property
    def category_ids(self) -> list[int]:
        return [self.classes.category_ids[label - 1] for label in self.labels.tolist()]

    def plot(self) -> np.ndarray:
        """A copy of `image` with the boxes, class names and scores drawn."""
        annotated = self.image.copy()
        draw_detections(annotated, self.boxes, self.labels, self.scores, self.classes.names, self.track_ids)
        return annotated

    def to_coco(self, image_id: int | None = None) -> list[dict[str, Any]]:
        """COCO results records (xywh boxes, the dataset's category ids; `track_id` with a tracker); `image_id`
        defaults to the frame index."""
        output = {"boxes": self.boxes, "labels": self.labels, "scores": self.scores}
        records = to_coco_results([output], [self.frame if image_id is None else image_id], self.classes.category_ids)
        if self.track_ids is not None:
            for record, track_id in zip(records, self.track_ids.tolist(), strict=True):
                record["track_id"] = track_id
        return records
