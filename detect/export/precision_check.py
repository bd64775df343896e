"""Is a reduced-precision IR right on this CPU? The first load of an int8 IR (or of bf16 on a CPU that runs it) on a
machine runs it and its f32 IR on a few images and compares their boxes, and their AP where the images are the
checkpoint's labelled val images; the verdict is recorded beside the IR in
`precision_checks.json`, keyed by the CPU (model, the flags that pick the kernels, ONEDNN_MAX_CPU_ISA), and read on
later loads. A failed check runs fp32 instead, with one line saying so; `precision_check=false` runs the IR anyway.

int8 kernels differ by CPU (VNNI, AMX, or AVX2's saturating 16-bit sums: see `quantize_int8`), so an IR made and
checked on one machine says nothing about another."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import torch
from pycocotools.coco import COCO

from detect.data.coco import index_coco
from detect.evaluation.coco import evaluate_coco
from detect.export.openvino_runtime import FLOAT_IR_KEY, OpenVinoDetector, read_metadata
from detect.export.parity import MAX_AP_LOSS, MIN_AGREEMENT, box_agreement
from detect.modeling.model import DetectorCall
from detect.modeling.preprocess import to_model_input
from detect.structures import Classes, to_coco_results
from detect.utils.cpu import cpu_description, isa_cap
from detect.utils.errors import DetectError

CHECKS_FILE = "precision_checks.json"
CHECK_IMAGES = 8  # images both IRs run on at the first load on a CPU
MIN_BOXES = 10  # fewer fp32 boxes on the images decide nothing: the IR runs, with a line saying so
CheckImages = tuple[list[np.ndarray], dict[str, Any] | None]  # BGR images, and their COCO-format labels if known


@dataclass(frozen=True)
class PrecisionVerdict:
    precision: str
    agreement: float  # the worse of: f32 boxes matched by reduced-precision ones, and the reverse
    boxes: int  # f32 boxes compared
    images: int
    ap: float | None = None  # COCO AP on the images' labels, where they have labels
    ap_fp32: float | None = None

    @property
    def passed(self) -> bool:
        ap_kept = self.ap is None or self.ap_fp32 - self.ap <= MAX_AP_LOSS
        return self.agreement >= MIN_AGREEMENT and ap_kept

    @property
    def conclusive(self) -> bool:
        return self.boxes >= MIN_BOXES

    def summary(self) -> str:
        ap = "" if self.ap is None else (f", AP {self.ap:.3f} against fp32's {self.ap_fp32:.3f} on their labels "
                                         f"(at most {MAX_AP_LOSS * 100:g} point lower passes)")
        return (f"{self.precision} agrees with fp32 on {self.agreement:.0%} of the boxes ({self.boxes} fp32 boxes, "
                f"{self.images} images; at least {MIN_AGREEMENT:.0%} passes){ap}")


def cpu_key() -> str:
    """What picks the kernels: the CPU's model and flags, and oneDNN's ISA cap when one is set."""
    return cpu_description() + isa_cap()


def labelled_ap(outputs: Sequence[dict[str, torch.Tensor]], labels: COCO, classes: Classes) -> float:
    """COCO AP of one detector's `outputs` on the images of `labels` (their index, the images in the same order)."""
    image_ids = [entry["id"] for entry in labels.dataset["images"]]
    results = to_coco_results(outputs, image_ids, classes.category_ids)
    return evaluate_coco(labels, results, classes, image_ids).stats["AP"]


def compare(reference: DetectorCall, candidate: DetectorCall, precision: str, images: Sequence[np.ndarray],
            labels: dict[str, Any] | None = None, classes: Classes | None = None) -> PrecisionVerdict:
    """Both detectors on `images` (BGR), one at a time: their boxes, and their AP where `labels` and `classes`
    are given."""
    inputs = [to_model_input(image, torch.device("cpu")) for image in images]
    outputs = [[run([tensor])[0] for tensor in inputs] for run in (reference, candidate)]
    agreement, boxes = box_agreement(*outputs)
    ap_fp32 = ap = None
    if labels and classes:
        indexed = index_coco(labels)  # once for both sides
        ap_fp32, ap = (labelled_ap(side, indexed, classes) for side in outputs)
    return PrecisionVerdict(precision, agreement, boxes, len(images), ap, ap_fp32)


def recorded_verdict(ir_path: Path, precision: str) -> PrecisionVerdict | None:
    """The verdict recorded beside `ir_path` for this CPU and precision, if any."""
    checks = ir_path.parent / CHECKS_FILE
    record = json.loads(checks.read_text()).get(cpu_key(), {}).get(precision) if checks.is_file() else None
    return PrecisionVerdict(**record) if record else None


def record_verdict(ir_path: Path, verdict: PrecisionVerdict) -> None:
    """Add `verdict` to the IR's checks file, atomically; a read-only folder keeps none (the check runs again)."""
    checks = ir_path.parent / CHECKS_FILE
    records = json.loads(checks.read_text()) if checks.is_file() else {}
    records.setdefault(cpu_key(), {})[verdict.precision] = asdict(verdict)
    tmp = checks.with_name(f".{CHECKS_FILE}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, checks)
    except OSError:
        tmp.unlink(missing_ok=True)


def float_ir(model: ov.Model, path: Path) -> Path | None:
    """The f32 IR an int8 IR was quantized from (`quantize_int8` records where, relative to it), if it is there."""
    name = read_metadata(model).get(FLOAT_IR_KEY)
    reference = path.parent / name if name else None
    return reference if reference and reference.is_file() else None


def checked_detector(path: Path, precision: str, threads: int | None, images: Callable[[], CheckImages] | None,
                     check: bool = True) -> tuple[OpenVinoDetector, str]:
    """The detector that should run `path` at `precision` on this CPU and a note on why (see the module docstring).
    `images` gives the images to compare on and their labels if known (None: there are none, and the IR runs
    unchecked, saying so)."""
    detector = OpenVinoDetector(path, precision, threads)
    if detector.precision == "fp32":
        return detector, ""
    if not check:
        return detector, f"{detector.precision} not checked against fp32 (precision_check=false)"
    reference = path if detector.precision == "bf16" else float_ir(detector.model, path)
    verdict, fp32 = recorded_verdict(path, detector.precision), None
    if verdict is None:
        if reference is None or images is None:
            missing = "its f32 IR" if reference is None else "images (pass calibration=<folder, glob or video>)"
            note = f"{detector.precision} not checked on this CPU: no {missing} to compare with"
            print(f"openvino: {note}", file=sys.stderr)
            return detector, note
        try:
            checked_images, labels = images()
        except DetectError as error:
            print(f"openvino: {detector.precision} not checked on this CPU: {error}", file=sys.stderr)
            return detector, f"{detector.precision} not checked on this CPU"
        fp32 = OpenVinoDetector(reference, "fp32", threads)  # compiled for the check's images: kept if it runs
        verdict = compare(fp32, detector, detector.precision, checked_images, labels, detector.classes)
        if not verdict.conclusive:
            note = f"{detector.precision} not checked on this CPU: {verdict.boxes} fp32 boxes, {MIN_BOXES} decide"
            print(f"openvino: {note}", file=sys.stderr)
            return detector, note
        record_verdict(path, verdict)
    if verdict.passed:
        return detector, f"checked on this CPU: {verdict.summary()}"
    note = f"{verdict.summary()} on this CPU ({cpu_key()})"
    print(f"openvino: {note}: running fp32 instead; precision_check=false runs {detector.precision} anyway",
          file=sys.stderr)
    return fp32 if fp32 is not None else OpenVinoDetector(reference, "fp32", threads), f"fp32 instead of {note}"
