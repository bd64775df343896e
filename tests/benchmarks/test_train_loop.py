"""benchmarks.train_loop: the Lightning side and the plain loop do the same work, and the benchmark reports both."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import TINY, compose_train, synthetic_overrides

from benchmarks.train_loop import benchmark, initial_model, make_datamodule, train_lightning, train_plain

pytestmark = pytest.mark.slow


def test_both_loops_end_with_the_same_weights_and_the_benchmark_reports_both(synthetic_cache: Path,
                                                                            tmp_path: Path) -> None:
    # the demo's clipping, and a warm-up shorter than the run so that the lr changes every step
    cfg = compose_train([*TINY, *synthetic_overrides(synthetic_cache), "trainer.gradient_clip_val=5.0",
                         "scheduler.warmup_steps=2", "logger=csv"], tmp_path)
    datamodule = make_datamodule(cfg)
    base = initial_model(cfg, len(datamodule.classes) + 1, seed=3)
    lightning, plain = copy.deepcopy(base), copy.deepcopy(base)
    assert len(train_lightning(cfg, lightning, datamodule, steps=3, seed=3)) == 3  # one (start, end) a step
    assert len(train_plain(cfg, plain, make_datamodule(cfg), steps=3, seed=3)) == 3
    trained, initial = plain.state_dict(), base.state_dict()
    for name, value in lightning.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(trained["roi_heads.box_predictor.cls_score.weight"],
                           initial["roi_heads.box_predictor.cls_score.weight"])

    figures = benchmark(cfg, seeds=[0], steps=1, warmup=1, repeats=1)
    assert figures["img_s"]["lightning"] > 0 and figures["img_s"]["plain"] > 0 and figures["ratio"] > 0
    assert len(figures["seeds"][0]["rounds"]["plain"][0]["step_s"]) == 1
