"""train.py mode=evaluate with slicing and test-time augmentation: the COCO table with per-size AP, from the model
run as configs/slice and configs/tta say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY, compose_train, synthetic_overrides, write_checkpoint

from detect.engine.training import run
from detect.modeling.model import build_model
from detect.modeling.slicing import Slicer
from detect.modeling.tta import Tta, augmented
from detect.structures import Classes
from detect.utils.errors import DetectError

SYNTHETIC = Classes(["square", "disc", "triangle"], [1, 2, 4])  # the built-in demo's classes


def test_evaluate_with_slicing_and_flip_writes_the_coco_table(synthetic_cache: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    split, augment, sliced, augmented_views = Slicer.split, Tta.__call__, [], []
    monkeypatch.setattr(Slicer, "split", lambda self, images: sliced.append(len(images)) or split(self, images))
    monkeypatch.setattr(Tta, "__call__",
                        lambda self, images: augmented_views.append(len(images)) or augment(self, images))
    base = [*TINY, *synthetic_overrides(synthetic_cache, num_train=4, num_val=4), "plots=false"]
    checkpoint = tmp_path / "tiny.ckpt"
    write_checkpoint(checkpoint, compose_train(base).model, SYNTHETIC)
    cfg = compose_train([*base, "mode=evaluate", f"ckpt_path={checkpoint}", "evaluation.slice.size=[64,64]",
                         "evaluation.tta.flip=true", "model.roi.score_thresh=0.01"], tmp_path / "run")
    stats = run(cfg)
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["stats"] == stats and {"AP", "APs", "APm", "APl"} <= set(stats)
    assert sum(sliced) == 4 and sum(augmented_views) > 4  # the 4 val images were sliced, each slice flipped too


def test_the_model_alone_without_either_and_one_whole_slice_is_the_model(tmp_path: Path) -> None:
    model = build_model(compose_train(TINY).model, 4).eval()
    assert augmented(model, {"flip": False}, {"size": None}) is None
    images = [torch.rand(3, 96, 128)]
    call = augmented(model, None, {"size": [96, 128], "full_frame": False})
    with torch.inference_mode():
        expected, outputs = model(images), call(images)
    assert all(torch.equal(expected[0][key], outputs[0][key]) for key in ("boxes", "scores", "labels"))


def test_bad_evaluation_slicing_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=r"^slice.overlap=2.0 must be in \[0, 1\)"):
        run(compose_train(["evaluation.slice.size=[64,64]", "evaluation.slice.overlap=2.0"], tmp_path))
