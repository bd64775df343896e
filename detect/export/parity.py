"""Whether an exported model reproduces PyTorch: detections matched box by box, tensors within a relative bound; and
whether NMS held (no two boxes of one class overlapping above its IoU threshold)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.ops import box_iou

from detect.export.onnx_export import flat_outputs

MATCH_IOU = 0.5  # a box agrees with one of the same class that overlaps it this much
MATCH_SCORE = 0.3  # boxes scored lower are noise to both precisions and left out of the comparison
MIN_AGREEMENT = 0.8  # a reduced precision passes when this fraction of each side's boxes has a match on the other
MAX_AP_LOSS = 0.01  # ... and, where the images have labels, its COCO AP is at most this much below fp32's (1 point)


@dataclass
class Parity:
    """Whether an exported model reproduces PyTorch, and the worst differences in words."""

    ok: bool
    summary: str


def detector_parity(reference: Sequence[Mapping[str, torch.Tensor]], candidate: Sequence[Mapping[str, torch.Tensor]],
                    box_px: float = 1.0, score_tol: float = 1e-3, score_thresh: float = 0.05,
                    detections_per_img: int = 100) -> Parity:
    """Same detections per image: each box has one of the same label within `box_px` (every coordinate) in the
    other output, with a score within `score_tol`; no detection at all fails. Matching by box is blind to the order of near-equal
    scores. A detection scored within `score_tol` of the cut (`score_thresh`, or the lowest score kept when
    `detections_per_img` fill up) may be in one output only: a rounding difference moves it across the cut."""
    worst_box = worst_score = 0.0
    matched = at_cut = 0
    for i, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
        ref = {k: v.detach().cpu().double() for k, v in ref.items()}
        cand = {k: v.detach().cpu().double() for k, v in cand.items()}
        distance = (ref["boxes"][:, None] - cand["boxes"][None]).abs().amax(-1)
        distance[ref["labels"][:, None] != cand["labels"][None]] = float("inf")
        ref_distance = distance.min(1).values if len(cand["boxes"]) else torch.full((len(ref["boxes"]),), torch.inf)
        cand_distance = distance.min(0).values if len(ref["boxes"]) else torch.full((len(cand["boxes"]),), torch.inf)
        cut = max([score_thresh] + [out["scores"].min().item() for out in (ref, cand)
                                    if len(out["scores"]) >= detections_per_img])
        lone = torch.cat([ref["scores"][ref_distance > box_px], cand["scores"][cand_distance > box_px]])
        if (lone > cut + score_tol).any():
            return Parity(False, f"image {i}: {int((lone > cut + score_tol).sum())} detections (best score "
                                 f"{lone.max():.3g}) have no match of the same label within {box_px:g} px")
        kept = ref_distance <= box_px
        if kept.any():
            match = distance[kept].argmin(1)
            worst_box = max(worst_box, ref_distance[kept].max().item())
            worst_score = max(worst_score, (ref["scores"][kept] - cand["scores"][match]).abs().max().item())
        matched, at_cut = matched + int(kept.sum()), at_cut + len(lone)
    if matched == 0:
        return Parity(False, f"0 detections matched on {len(reference)} images: nothing was compared (the model "
                             "detects nothing there); check on images where it detects objects")
    ok = worst_box <= box_px and worst_score <= score_tol
    lone_text = f", {at_cut} at the score cut in one output only" if at_cut else ""
    return Parity(ok, f"{matched} detections matched, boxes within {worst_box:.2g} px, scores within "
                      f"{worst_score:.2g} (limits {box_px:g} px, {score_tol:g}){lone_text}")


def _matched(boxes: torch.Tensor, labels: torch.Tensor, others: torch.Tensor, other_labels: torch.Tensor) -> int:
    """How many of `boxes` overlap a box of `others` of the same label by MATCH_IOU."""
    if len(boxes) == 0 or len(others) == 0:
        return 0
    overlap = box_iou(boxes, others) * (labels[:, None] == other_labels[None, :])
    return int((overlap.max(dim=1).values >= MATCH_IOU).sum())


def box_agreement(reference: Sequence[Mapping[str, torch.Tensor]], candidate: Sequence[Mapping[str, torch.Tensor]],
                  min_score: float = MATCH_SCORE) -> tuple[float, int]:
    """(agreement, reference boxes): the worse of the fraction of reference boxes with a match among the candidate's
    and the reverse, over boxes scored `min_score` or more; 1.0 where neither side has any."""
    kept = [[{key: output[key][output["scores"] >= min_score] for key in ("boxes", "labels")} for output in side]
            for side in (reference, candidate)]
    totals = [sum(len(output["boxes"]) for output in side) for side in kept]
    hits = [sum(_matched(a["boxes"], a["labels"], b["boxes"], b["labels"]) for a, b in zip(first, second))
            for first, second in ((kept[0], kept[1]), (kept[1], kept[0]))]
    fractions = [hit / total if total else float(totals[1 - side] == 0) for side, (hit, total)
                 in enumerate(zip(hits, totals))]
    return min(fractions), totals[0]


def same_class_overlaps(boxes: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> int:
    """Pairs of boxes of one label overlapping above `iou_threshold`: none after a class-wise NMS at that IoU."""
    pairs = 0
    for label in labels.unique():
        same = boxes[labels == label].double()
        pairs += int((box_iou(same, same).triu(1) > iou_threshold).sum())
    return pairs


def relative_difference(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """The largest |candidate - reference|, relative to the largest |reference| (in float64)."""
    reference, candidate = reference.detach().cpu().double(), candidate.detach().cpu().double()
    return ((reference - candidate).abs().max() / reference.abs().max().clamp_min(1e-12)).item()


def tensor_parity(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor], rel_tol: float = 1e-4) -> Parity:
    """Every output within `rel_tol` of PyTorch, relative to the largest magnitude of that output."""
    worst = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        if ref.shape != cand.shape:
            return Parity(False, f"output shape {tuple(cand.shape)}, PyTorch has {tuple(ref.shape)}")
        worst = max(worst, relative_difference(ref, cand))
    return Parity(worst <= rel_tol, f"outputs within {worst:.2g} relative (limit {rel_tol:g})")


def check_parity(network: nn.Module, task: str, runner: Any, images: torch.Tensor | list[torch.Tensor],
                 parity_cfg: Mapping[str, Any], precision: str = "fp32") -> Parity:
    """Run `network` (fp32) and its exported `runner` on `images` (a batch, or a list of images for the detector).

    fp32 must reproduce PyTorch (`detector_parity`, `tensor_parity`); a reduced `precision` (bf16, int8) cannot, so
    its outputs get the looser relative bound `parity_cfg[f"{precision}_rel"]`, its detections a box agreement of
    MIN_AGREEMENT both ways over the boxes PyTorch keeps (`box_agreement` at the detector's score threshold).
    """
    with torch.inference_mode():  # the detector one image per call, as its graph (a batch pads to its largest image)
        reference = ([network([image])[0] for image in images] if task == "detector"
                     else flat_outputs(task, network(images)))
    if task != "detector":
        return tensor_parity(reference, runner(images=images),
                             parity_cfg["logits_rel" if precision == "fp32" else f"{precision}_rel"])
    score_thresh = network.roi_heads.score_thresh
    if precision == "fp32":
        return detector_parity(reference, runner(images), parity_cfg["box_px"], parity_cfg["score"], score_thresh,
                               network.roi_heads.detections_per_img)
    agreement, boxes = box_agreement(reference, runner(images), score_thresh)
    if boxes == 0:
        return Parity(False, f"PyTorch keeps no box on {len(images)} images: nothing to compare {precision} with")
    return Parity(agreement >= MIN_AGREEMENT, f"{precision} agrees with PyTorch fp32 on {agreement:.0%} of "
                                             f"{boxes} boxes (IoU {MATCH_IOU:g}, same label; limit {MIN_AGREEMENT:.0%})")
