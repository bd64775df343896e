"""The recipes study's configs and its verdict (the trainings themselves: python -m benchmarks.recipes; no slow test,
docs/BENCHMARKS.md says why)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.recipes import ADDITIONS, combinable, meets_targets, study_config, summary


def test_a_study_run_is_data_custom_with_the_demo_model_and_every_recipe_key(tmp_path: Path) -> None:
    paths = {key: tmp_path / key for key in ("train_json", "train_images", "val_json", "val_images")}
    cfg = study_config(paths, ADDITIONS["repeat_factor"], seed=2, steps=120, output_dir=tmp_path)
    assert cfg.data._target_ == "detect.data.datamodule.CocoDataModule"
    assert cfg.data.train_json == str(paths["train_json"])
    assert (cfg.data.sampler, cfg.data.augment, cfg.data.copy_paste, cfg.callbacks.ema.decay) == \
        ("repeat_factor", "hflip", False, None)
    assert cfg.model.backbone.name == "resnet18" and cfg.model.weights is None and cfg.model.min_size == 128
    assert (cfg.trainer.max_steps, list(cfg.scheduler.milestones), cfg.seed, cfg.data.seed) == (120, [100], 2, 2)


def test_the_targets_need_the_rare_class_up_by_half_and_a_tenth_without_losing_ap() -> None:
    def row(ap: list[float], rare: list[float]) -> dict:
        return summary([{"AP": a, "AP50": a, "rare_AP": r} for a, r in zip(ap, rare)])
    current = row([0.30, 0.32, 0.34], [0.10, 0.12, 0.14])
    assert meets_targets(row([0.30, 0.31, 0.32], [0.25, 0.26, 0.27]), current)  # AP within the current's std
    assert not meets_targets(row([0.30, 0.32, 0.34], [0.18, 0.20, 0.22]), current)  # +0.08 only
    assert not meets_targets(row([0.25, 0.26, 0.27], [0.30, 0.30, 0.30]), current)  # AP lost beyond the spread


def test_the_combination_takes_the_best_of_the_variants_that_set_the_same_keys() -> None:
    def row(name: str, rare: float) -> dict:
        return {"recipe": name, "overrides": ADDITIONS[name], "rare_AP": {"mean": rare}}
    rows = [row("repeat_factor", 0.20), row("ema", 0.15), row("repeat_factor_t0.5_linear", 0.25),
            row("repeat_factor_t0.5", 0.22)]
    assert [r["recipe"] for r in combinable(rows)] == ["repeat_factor_t0.5_linear", "ema"]
