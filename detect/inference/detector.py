"""The Python API: `Detector.load(weights)`, then `detector(image)` for results or `detector.stream(source)` for a
generator of results over an image folder, a video, a webcam or a stream.

Per frame: decode (a background thread) -> preprocess (the uint8 frame to the device, then RGB float there) ->
model (the backend, whose own transform resizes and normalizes) -> postprocess (to the host: score threshold,
classes, max_det). With `slice` the frame is cut into slices before the model and their boxes merged after it
(`detect.modeling.slicing`): the "slice" stage times both. With `tta` the model stage runs every view of each image
(or slice) and merges them (`detect.modeling.tta`). Each stage's milliseconds are in `Result.ms`; GPU stages
are timed with CUDA events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from detect.config import compose
from detect.data.sources.image_input import ImageInput, read_image
from detect.data.sources.multisource import ReaderOptions, interleave, open_readers
from detect.data.sources.paths import parse_sources
from detect.data.sources.reader import Frame, FrameReader
from detect.inference.backends import Backend, BackendOptions, load_backend
from detect.modeling.model import check_model_config
from detect.modeling.preprocess import to_model_input
from detect.modeling.slicing import SliceInput, call_by_shape, slicer
from detect.modeling.tta import Tta, TtaInput, tta_spec
from detect.structures import SLICE_STAGE, Result
from detect.tracking.counting import ZonesInput, zone_counters
from detect.tracking.trackers import Tracker
from detect.utils.device import resolve_device
from detect.utils.errors import DetectError, first_line
from detect.utils.timing import DeviceTimer

SourceInput = str | int | Path | FrameReader
TrackerInput = str | Mapping[str, Any] | Tracker | None
RECONNECT_S = 60.0  # a live source that drops is reopened for this long (infer.yaml's reconnect)
READ_TIMEOUT_S = 10.0  # a live read that takes longer is abandoned (infer.yaml's read_timeout)


def model_config(backbone: str | None = None, **overrides: Any) -> DictConfig:
    """The `model` config group as infer.py composes it (configs/model), with `model/backbone` and key overrides."""
    group = [f"model/backbone={backbone}"] if backbone else []
    cfg = compose("infer", group)
    model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    OmegaConf.set_struct(model, True)
    try:
        model = OmegaConf.merge(model, overrides)  # struct: an unknown key raises
    except Exception as error:  # omegaconf's ConfigKeyError / ValidationError
        raise DetectError(f"model override {overrides} does not fit configs/model ({first_line(error)}); "
                          "use keys such as min_size, max_size, rpn={...}, roi={...}") from None
    check_model_config(model)
    return model


class Detector:
    """A detection backend with its classes and its filters (score threshold, classes kept, detections kept)."""

    def __init__(self, backend: Backend, device: torch.device | str = "cpu", score_threshold: float = 0.5,
                 classes: Sequence[str | int] | None = None, max_det: int | None = None, batch: bool = True,
                 slicing: SliceInput = None, tta: TtaInput = None) -> None:
        check_filters(score_threshold, max_det)
        self.slicer = slicer(slicing, batch)
        augment = tta_spec(tta)
        self.call = Tta(augment, backend, backend.resized) if augment else backend
        self.batch = batch
        self.backend = backend
        self.device = torch.device(device)
        self.score_threshold = score_threshold
        self.keep_labels = self.labels_of(classes)
        self.max_det = max_det
        stages = ("preprocess", "model", "postprocess", *((SLICE_STAGE, "merge") if self.slicer else ()))
        self._timers = {stage: DeviceTimer(self.device) for stage in stages}
        self._lock = threading.Lock()  # one model call at a time: a server's requests and its live view share it

    @classmethod
    def load(cls, weights: str | Path | None = None, *, backbone: str | None = None, device: str = "cpu",
             precision: str = "fp32", score_threshold: float = 0.5, backend: str | None = None,
             classes: Sequence[str | int] | None = None, max_det: int | None = None, channels_last: bool = True,
             compile: bool = False, threads: int | None = None, model_from_checkpoint: bool = True,
             calibration: str | None = None, precision_check: bool = True, slice: SliceInput = None,
             tta: TtaInput = None, **model: Any) -> Detector:
        """A Detector for `weights`: a checkpoint of train.py (its classes and model config come with it), a plain
        detector state_dict, a torchvision enum name (COCO_V1), a model.onnx or model.xml, or None (random weights,
        COCO's 91 outputs). backend="openvino" with precision="int8" calibrates on `calibration` images (default: the
        checkpoint's training images) once, and int8 / bf16 IRs are compared with fp32 at the first load on a CPU (fp32
        runs instead if they disagree, unless precision_check=False; see `detect.export.precision_check`). `slice`
        (configs/slice's keys, e.g. {"size": [512, 512], "merge": "nms"}) runs each frame as overlapping slices plus
        the whole frame, merged; `tta` (configs/tta's keys, e.g. {"flip": True, "sizes": [640, 800]}) runs each frame
        mirrored and at other short sides too, merged. `backbone` and `**model` (e.g. min_size=512,
        rpn={"post_nms_top_n_test": 300}) set the model config where the weights do not bring one."""
        model_cfg = model_config(backbone, **model)
        model_cfg.roi.score_thresh = score_threshold
        options = BackendOptions(resolve_device(device), precision, channels_last, compile, threads, calibration,
                                 precision_check)
        loaded = load_backend(backend, str(weights) if weights else None, model_cfg, options, model_from_checkpoint)
        return cls(loaded, options.device, score_threshold, classes, max_det, slicing=slice, tta=tta)

    def sliced(self, slicing: SliceInput) -> Detector:
        """This detector's model and filters run as `slicing` says (configs/slice's keys; None: whole frames only);
        the two take turns on the model."""
        detector = Detector(self.backend, self.device, self.score_threshold, None, self.max_det, self.batch, slicing)
        detector.keep_labels, detector._lock = self.keep_labels, self._lock
        return detector

    @property
    def classes(self) -> list[str]:
        return self.backend.classes.names

    def labels_of(self, classes: Sequence[str | int] | None) -> set[int] | None:
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
        return self.predict_frames([Frame(frame, source, image, decode_ms)], classes, max_det)[0]

    def predict_frames(self, frames: Sequence[Frame], classes: set[int] | None = None,
                       max_det: int | None = None) -> list[Result]:
        """Detections on each frame, with each stage timed. With `batch` the frames go to the backend in one call
        (torch pads them into one tensor; the ONNX Runtime and OpenVINO graphs take one image each): every result
        then has the batch's preprocess and model times, the latency its frame saw. With slicing, one call per shape:
        the slices of every frame, then the whole frames. Calls from several threads take turns."""
        with self._lock:
            return self._predict_frames(frames, classes, max_det)

    def _predict_frames(self, frames: Sequence[Frame], classes: set[int] | None,
                        max_det: int | None) -> list[Result]:
        started = time.perf_counter()
        with torch.inference_mode():
            with self._timers["preprocess"]:
                tensors = [to_model_input(frame.image, self.device) for frame in frames]
            if self.slicer is not None:
                with self._timers[SLICE_STAGE]:
                    tensors, plan = self.slicer.split(tensors)
            with self._timers["model"]:
                if self.slicer is not None:
                    outputs = call_by_shape(self.call, tensors)
                elif self.batch:
                    outputs = self.call(tensors)
                else:
                    outputs = [self.call([tensor])[0] for tensor in tensors]
            if self.slicer is not None:
                with self._timers["merge"]:
                    outputs = self.slicer.join(outputs, plan)
            with self._timers["postprocess"]:
                kept = [self._postprocess(output, classes or self.keep_labels, max_det or self.max_det)
                        for output in outputs]
        ms = {stage: timer.elapsed_ms for stage, timer in self._timers.items()}
        if self.slicer is not None:
            ms[SLICE_STAGE] += ms.pop("merge")
        return [Result(boxes, scores, labels, self.backend.classes, frame.image, frame.index, frame.name,
                       {"decode": frame.decode_ms, **ms}, started)
                for frame, (boxes, labels, scores) in zip(frames, kept, strict=True)]

    def __call__(self, images: ImageInput | Iterable[ImageInput]) -> Result | list[Result]:
        """Results for an image path or a BGR array (OpenCV's), or a list of results for a list of either."""
        if isinstance(images, (str, Path, np.ndarray)):
            pixels, name, decode_ms = read_image(images)
            return self.predict(pixels, 0, name, decode_ms)
        results = []
        for index, image in enumerate(images):
            pixels, name, decode_ms = read_image(image)
            results.append(self.predict(pixels, index, name, decode_ms))
        return results

    def stream(self, source: SourceInput | Sequence[SourceInput], *, vid_stride: int = 1,
               classes: Sequence[str | int] | None = None, max_det: int | None = None,
               tracker: TrackerInput | Sequence[Tracker] = None, zones: ZonesInput = None, queue_size: int = 8,
               stop_event: threading.Event | None = None, reconnect: float = RECONNECT_S,
               read_timeout: float = READ_TIMEOUT_S) -> Iterator[Result]:
        """Results for every frame of `source` (an image, folder, glob, video file, webcam index or URL, or a
        FrameReader already open with its own options), decoded on a background thread; or of several sources (a
        list, or a .txt file with one a line), their frames batched, each result with its `source_index`. A live
        source that drops is reopened for up to `reconnect` s. Breaking out of the loop, an error or the end of the
        input closes the sources; setting `stop_event` ends them after the current frames. With `tracker` (a name of
        configs/tracker, its settings, a Tracker, or one Tracker per source) each result has `track_ids`; with `zones`
        too (a name of configs/zones, its settings, a ZoneCounter, or one per source) it has `counts` and `events`."""
        check_filters(max_det=max_det)
        labels = self.labels_of(classes)
        sources = [source] if isinstance(source, FrameReader) else parse_sources(source)
        ready = threading.Event()
        readers, _ = open_readers(sources, ReaderOptions(queue_size, vid_stride, reconnect, read_timeout), stop_event,
                                  ready)
        try:
            trackers = _trackers(tracker, readers)
            counters = zone_counters(zones, trackers, readers)
            for batch in interleave(readers, ready):
                results = self.predict_frames([frame for _, frame in batch], labels, max_det)
                for (index, _), result in zip(batch, results):
                    result.source_index = index
                    result = trackers[index].update(result) if trackers[index] is not None else result
                    yield counters[index].update(result) if counters[index] is not None else result
        finally:
            for reader in readers:
                if reader is not None:
                    reader.close()


def _trackers(tracker: TrackerInput | Sequence[Tracker], readers: Sequence[FrameReader | None]) -> list[Tracker | None]:
    """One tracker per source: `tracker` itself for one source, a new one per source from a name or settings."""
    if isinstance(tracker, Sequence) and not isinstance(tracker, str):
        if len(tracker) != len(readers):
            raise DetectError(f"{len(tracker)} trackers for {len(readers)} sources: pass one per source, or a name")
        return list(tracker)
    if isinstance(tracker, Tracker):
        if len(readers) > 1:
            raise DetectError("one Tracker for several sources: pass a tracker name (one tracker each) or a list")
        return [tracker]
    return [Tracker(tracker, reader.frame_rate) if tracker is not None and reader is not None else None
            for reader in readers]


def check_filters(score_threshold: float = 0.0, max_det: int | None = None) -> None:
    """A score threshold in [0, 1) and max_det null or >= 1, or one line naming the key."""
    if not 0.0 <= score_threshold < 1.0:
        raise DetectError(f"score_threshold={score_threshold} must be in [0, 1)")
    if max_det is not None and max_det < 1:
        raise DetectError(f"max_det={max_det} must be >= 1 (or null: every detection above the score threshold)")
