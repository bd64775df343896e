"""The Python API: `Detector.load(weights)`, then `detector(image)` for results or `detector.stream(source)` for a
generator of results over an image folder, a video, a webcam or a stream.

Per frame: decode (a background thread) -> preprocess (the uint8 frame to the device, then RGB float there) ->
model (the backend, whose own transform resizes and normalizes) -> postprocess (to the host: score threshold,
classes, max_det). Each stage's milliseconds are in `Result.ms`; GPU stages are timed with CUDA events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from detect.config import CONFIG_DIR, check_model_config
from detect.device import resolve_device
from detect.errors import DetectError
from detect.inference.backends import Backend, BackendOptions, load_backend
from detect.inference.counting import ZoneCounter, zone_counter
from detect.inference.result import Result
from detect.inference.sources import FrameReader
from detect.inference.tracking import Tracker
from detect.timing import DeviceTimer

ImageInput = str | Path | np.ndarray


def to_model_input(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """BGR uint8 HxWx3 pixels -> RGB float32 3xHxW in 0..1 on `device`; only the uint8 frame crosses to the device."""
    pixels = torch.from_numpy(image).to(device, non_blocking=True)
    return pixels.permute(2, 0, 1).flip(0).float().div_(255.0)


def model_config(backbone: str | None = None, **overrides: Any) -> DictConfig:
    """The `model` config group as infer.py composes it (configs/model), with `model/backbone` and key overrides."""
    group = [f"model/backbone={backbone}"] if backbone else []
    if GlobalHydra.instance().is_initialized():  # inside an entry point of this package (its config folder)
        cfg = compose(config_name="infer", overrides=group)
    else:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="infer", overrides=group)
    model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    OmegaConf.set_struct(model, True)
    try:
        model = OmegaConf.merge(model, overrides)  # struct: an unknown key raises
    except Exception as error:  # omegaconf's ConfigKeyError / ValidationError
        raise DetectError(f"model override {overrides} does not fit configs/model ({error}); "
                          "use keys such as min_size, max_size, rpn={...}, roi={...}") from None
    check_model_config(model)
    return model


class Detector:
    """A detection backend with its classes and its filters (score threshold, classes kept, detections kept)."""

    def __init__(self, backend: Backend, device: torch.device | str = "cpu", score_threshold: float = 0.5,
                 classes: Sequence[str | int] | None = None, max_det: int | None = None) -> None:
        check_filters(score_threshold, max_det)
        self.backend = backend
        self.device = torch.device(device)
        self.score_threshold = score_threshold
        self.keep_labels = self._labels_of(classes)
        self.max_det = max_det
        self._timers = {stage: DeviceTimer(self.device) for stage in ("preprocess", "model", "postprocess")}

    @classmethod
    def load(cls, weights: str | Path | None = None, *, backbone: str | None = None, device: str = "cpu",
             precision: str = "fp32", score_threshold: float = 0.5, backend: str | None = None,
             classes: Sequence[str | int] | None = None, max_det: int | None = None, channels_last: bool = True,
             compile: bool = False, threads: int | None = None, model_from_checkpoint: bool = True,
             calibration: str | None = None, **model: Any) -> Detector:
        """A Detector for `weights`: a checkpoint of train.py (its classes and model config come with it), a plain
        detector state_dict, a torchvision enum name (COCO_V1), a model.onnx or model.xml, or None (random weights,
        COCO's 91 outputs). backend="openvino" with precision="int8" calibrates on `calibration` images (default: the
        checkpoint's training images) once. `backbone` and `**model` (e.g. min_size=512,
        rpn={"post_nms_top_n_test": 300}) set the model config where the weights do not bring one."""
        model_cfg = model_config(backbone, **model)
        model_cfg.roi.score_thresh = score_threshold
        options = BackendOptions(resolve_device(device), precision, channels_last, compile, threads, calibration)
        loaded = load_backend(backend, str(weights) if weights else None, model_cfg, options, model_from_checkpoint)
        return cls(loaded, options.device, score_threshold, classes, max_det)

    @property
    def classes(self) -> list[str]:
        return self.backend.classes.names

    def _labels_of(self, classes: Sequence[str | int] | None) -> set[int] | None:
        """The labels (1..K) of class names or dataset category ids; None keeps every class."""
        if classes is None:
            return None
        known = self.backend.classes
        labels = set()
        for item in classes:
            table = known.names if isinstance(item, str) else known.category_ids
            if item not in table:
                raise DetectError(f"classes: {item!r} is not a class of this model; choose names from "
                                  f"{', '.join(known.names[:20])}{', ...' if len(known) > 20 else ''} "
                                  "or their category ids")
            labels.add(table.index(item) + 1)
        return labels

    def _postprocess(self, output: dict[str, torch.Tensor], classes: set[int] | None,
                     max_det: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = output["scores"] >= self.score_threshold
        if classes is not None:
            keep &= torch.isin(output["labels"], torch.tensor(sorted(classes), device=output["labels"].device))
        boxes, labels, scores = output["boxes"][keep], output["labels"][keep], output["scores"][keep]
        if max_det is not None and len(scores) > max_det:
            top = scores.argsort(descending=True)[:max_det]
            boxes, labels, scores = boxes[top], labels[top], scores[top]
        return boxes.float().cpu().numpy(), labels.cpu().numpy(), scores.float().cpu().numpy()

    def predict(self, image: np.ndarray, frame: int = 0, source: str = "", decode_ms: float = 0.0,
                classes: set[int] | None = None, max_det: int | None = None) -> Result:
        """Detections on one BGR uint8 HxWx3 image, with each stage timed."""
        started = time.perf_counter()
        with torch.inference_mode():
            with self._timers["preprocess"]:
                tensor = to_model_input(image, self.device)
            with self._timers["model"]:
                output = self.backend([tensor])[0]
            with self._timers["postprocess"]:
                boxes, labels, scores = self._postprocess(output, classes or self.keep_labels, max_det or self.max_det)
        ms = {"decode": decode_ms, **{stage: timer.elapsed_ms for stage, timer in self._timers.items()}}
        return Result(boxes, scores, labels, self.backend.classes, image, frame, source, ms, started)

    def __call__(self, images: ImageInput | Iterable[ImageInput]) -> Result | list[Result]:
        """Results for an image path or a BGR array (OpenCV's), or a list of results for a list of either."""
        if isinstance(images, (str, Path, np.ndarray)):
            pixels, name, decode_ms = _read_image(images)
            return self.predict(pixels, 0, name, decode_ms)
        results = []
        for index, image in enumerate(images):
            pixels, name, decode_ms = _read_image(image)
            results.append(self.predict(pixels, index, name, decode_ms))
        return results

    def stream(self, source: str | int | Path | FrameReader, *, vid_stride: int = 1,
               classes: Sequence[str | int] | None = None, max_det: int | None = None,
               tracker: str | Mapping[str, Any] | Tracker | None = None,
               zones: str | Mapping[str, Any] | ZoneCounter | None = None, queue_size: int = 8,
               stop_event: threading.Event | None = None) -> Iterator[Result]:
        """Results for every frame of `source` (an image, folder, glob, video file, webcam index or URL, or a
        FrameReader already open with its own options), decoded on a background thread. Breaking out of the loop,
        an error or the end of the input closes the source; setting `stop_event` ends it after the current frame.
        With `tracker` (a name of configs/tracker, its settings, or a Tracker) each result has `track_ids`; with
        `zones` too (a name of configs/zones, its settings, or a ZoneCounter) it has `counts` and `events`."""
        check_filters(max_det=max_det)
        labels = self._labels_of(classes)
        reader = source if isinstance(source, FrameReader) else FrameReader(source, queue_size, vid_stride, stop_event)
        try:
            if tracker is not None and not isinstance(tracker, Tracker):
                tracker = Tracker(tracker, reader.frame_rate)
            counter = zone_counter(zones, tracker, reader.fps)
            for frame in reader:
                result = self.predict(frame.image, frame.index, frame.name, frame.decode_ms, labels, max_det)
                result = tracker.update(result) if tracker is not None else result
                yield counter.update(result) if counter is not None else result
        finally:
            reader.close()


def check_filters(score_threshold: float = 0.0, max_det: int | None = None) -> None:
    """A score threshold in [0, 1) and max_det null or >= 1, or one line naming the key."""
    if not 0.0 <= score_threshold < 1.0:
        raise DetectError(f"score_threshold={score_threshold} must be in [0, 1)")
    if max_det is not None and max_det < 1:
        raise DetectError(f"max_det={max_det} must be >= 1 (or null: every detection above the score threshold)")


def _read_image(image: ImageInput) -> tuple[np.ndarray, str, float]:
    """(BGR pixels, name, decode ms) of an image path or array."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DetectError(f"an image array must be HxWx3 uint8 BGR (OpenCV's), got {image.dtype} {image.shape}")
        return image, "array", 0.0
    start = time.perf_counter()
    pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if pixels is None:
        problem = "does not exist" if not Path(image).exists() else "is not an image OpenCV reads"
        raise DetectError(f"image {image} {problem}; pass a jpg/png/... file or a BGR numpy array")
    return pixels, Path(image).name, (time.perf_counter() - start) * 1000.0
