"""COCO evaluation against the dataset's own annotation file, gathered across DDP ranks: faster-coco-eval's C++
COCOeval (the default) or pycocotools' Python one (the reference; the same 12 stats and per-class AP)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from faster_coco_eval.core.faster_eval_api import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detect.evaluation.prediction_checks import check_results
from detect.structures import Classes, to_coco_results
from detect.utils.errors import check_choice

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKENDS = ("faster", "pycocotools")  # evaluation.backend: faster-coco-eval (C++) | pycocotools (Python, reference)


@dataclass
class CocoEvaluation:
    """pycocotools' 12 summary stats by name, the printed summary, AP / AP50 per class, images evaluated."""

    stats: dict[str, float]
    summary: str
    per_class: list[dict[str, Any]]
    num_images: int
    # kept on the rank that evaluated: pycocotools' COCOeval or faster-coco-eval's (same params and eval arrays)
    coco_eval: COCOeval | COCOeval_faster | None = field(default=None, repr=False, compare=False)

    def per_class_table(self) -> str:
        """The per-class AP table as aligned text."""
        width = max([len("class")] + [len(row["class"]) for row in self.per_class])
        lines = [f"{'class':<{width}}  {'id':>5}  {'AP':>6}  {'AP50':>6}"]
        lines += [f"{row['class']:<{width}}  {row['category_id']:>5}  {row['AP']:>6.3f}  {row['AP50']:>6.3f}"
                  for row in self.per_class]
        return "\n".join(lines)


def load_results(coco_gt: COCO, results: list[dict[str, Any]]) -> COCO:
    """pycocotools' index of non-empty `results` against `coco_gt`, for any backend and any number of evaluations;
    the records are copied one level deep, since loadRes writes into them."""
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes([dict(record) for record in results])


def run_cocoeval(coco_gt: COCO, coco_dt: COCO, image_ids: Sequence[int] | None = None, backend: str = "faster",
                 iou_thresholds: Sequence[float] | None = None) -> tuple[Any, str]:
    """COCOeval (bbox) of `backend` evaluated and accumulated on `coco_dt` (`load_results`) over `image_ids`
    (default: every image), at COCO's IoU thresholds or `iou_thresholds` (then 100 detections an image only);
    returns it and, at COCO's thresholds, its summary (pycocotools' 12 lines)."""
    check_choice("evaluation.backend", backend, BACKENDS)
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "faster":
            coco_eval = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=lambda *args: None)
        else:
            coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(set(image_ids))
        if iou_thresholds is not None:
            coco_eval.params.iouThrs = np.asarray(iou_thresholds, dtype=float)
            coco_eval.params.maxDets = [100]
        coco_eval.evaluate()
        coco_eval.accumulate()
    if iou_thresholds is not None:
        return coco_eval, ""
    if backend == "faster":  # it prints through print_function, two AR lines more than pycocotools' 12
        lines: list[str] = []
        coco_eval.print_function = lines.append
        coco_eval.summarize()
        return coco_eval, "\n".join(lines[:len(STAT_NAMES)])
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    return coco_eval, summary.getvalue().rstrip()


def evaluate_coco(coco_gt: COCO, results: list[dict[str, Any]], classes: Classes,
                  image_ids: Sequence[int] | None = None, backend: str = "faster") -> CocoEvaluation:
    """COCO bbox evaluation of `results` over `image_ids` (default: every image of `coco_gt`) by `backend` (see
    BACKENDS); a DetectError names the first result whose image, category or box is not valid for `coco_gt`."""
    check_choice("evaluation.backend", backend, BACKENDS)
    num_images = len(set(image_ids)) if image_ids is not None else len(coco_gt.getImgIds())
    check_results(coco_gt, results)
    if not results:  # pycocotools cannot load an empty result list; nothing detected scores 0
        return CocoEvaluation({name: 0.0 for name in STAT_NAMES}, "no detections: every AP and AR is 0",
                              [{"class": n, "category_id": c, "AP": 0.0, "AP50": 0.0}
                               for n, c in zip(classes.names, classes.category_ids)], num_images)
    coco_eval, summary = run_cocoeval(coco_gt, load_results(coco_gt, results), image_ids, backend)
    # precision[iou, recall, class, area=all, maxDets=100]; -1 marks classes without ground truth
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]
    per_class = []
    for k, category_id in enumerate(coco_eval.params.catIds):
        name = classes.names[classes.category_ids.index(category_id)]
        ap = precision[:, :, k]
        valid = ap[ap > -1]
        valid50 = ap[0][ap[0] > -1]
        per_class.append({"class": name, "category_id": int(category_id),
                          "AP": float(valid.mean()) if valid.size else float("nan"),
                          "AP50": float(valid50.mean()) if valid50.size else float("nan")})
    stats = {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}
    return CocoEvaluation(stats, summary, per_class, num_images, coco_eval)


def gather_predictions(predictions: dict[int, list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    """Every rank's predictions (image id -> COCO results) on rank 0 (other ranks get {}): gathered there only, not
    to every rank (measured in `python -m benchmarks.coco_eval`)."""
    shards: list[dict | None] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(predictions, shards, dst=0)
    return {image_id: result for shard in shards or [] for image_id, result in shard.items()}


class CocoEvaluator:
    """Collects predictions batch by batch, gathers them from every rank, evaluates once, writes the files."""

    def __init__(self, coco_gt: COCO, classes: Classes, backend: str = "faster") -> None:
        check_choice("evaluation.backend", backend, BACKENDS)
        self.coco_gt = coco_gt
        self.classes = classes
        self.backend = backend
        self.predictions: dict[int, list[dict[str, Any]]] = {}

    def reset(self) -> None:
        self.predictions = {}

    def update(self, outputs: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int]) -> None:
        for output, image_id in zip(outputs, image_ids):
            self.predictions[int(image_id)] = to_coco_results([output], [image_id], self.classes.category_ids)

    def compute(self) -> tuple[CocoEvaluation, list[dict[str, Any]]]:
        """Evaluate once, on rank 0, the predictions of every rank over the images that were predicted.

        Every rank gets the evaluation back; the COCO results list is rank 0's only (empty elsewhere). An image
        that DistributedSampler's padding repeated on two ranks counts once.
        """
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        predictions = gather_predictions(self.predictions) if distributed else self.predictions
        evaluation, results = None, []
        if not distributed or dist.get_rank() == 0:
            results = [result for image_id in sorted(predictions) for result in predictions[image_id]]
            evaluation = evaluate_coco(self.coco_gt, results, self.classes, list(predictions), self.backend)
        if distributed:  # the numbers to every rank; the COCOeval (and its whole ground truth) stays on rank 0
            box = [replace(evaluation, coco_eval=None) if evaluation is not None else None]
            dist.broadcast_object_list(box, src=0)
            evaluation = evaluation if dist.get_rank() == 0 else box[0]
        return evaluation, results


def write_evaluation(evaluation: CocoEvaluation, results: list[dict[str, Any]], folder: str | Path,
                     extra: dict[str, Any] | None = None) -> None:
    """predictions.json (COCO results format), metrics.json (with `extra`) and per_class_ap.txt in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.json").write_text(json.dumps(results))
    metrics = {"stats": evaluation.stats, "per_class": evaluation.per_class, "images": evaluation.num_images,
               **(extra or {})}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=True))
    (folder / "per_class_ap.txt").write_text(evaluation.summary + "\n\n" + evaluation.per_class_table() + "\n")
