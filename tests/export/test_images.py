"""Calibration images from a checkpoint's own run: runs written before the packages moved still resolve."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from detect.data.datamodule import SyntheticDataModule
from detect.export.images import run_split
from helpers import compose_train, synthetic_overrides


def test_a_run_written_before_the_restructure_still_gives_its_images(tmp_path: Path) -> None:
    cfg = compose_train(["data=synthetic", *synthetic_overrides(tmp_path / "data", num_train=4, num_val=2)])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["_target_"] = "detect.data.SyntheticDataModule"  # as .hydra/config.yaml said before detect/data/datamodule.py
    OmegaConf.save(OmegaConf.create({"data": data}), run / ".hydra" / "config.yaml")

    dataset, image_dir = run_split(run / "checkpoints" / "best.ckpt", "val")

    assert len(dataset["images"]) == 2 and all((image_dir / entry["file_name"]).is_file() for entry in dataset["images"])
    fresh = SyntheticDataModule(**{k: v for k, v in data.items() if k != "_target_"})
    assert fresh.reader("val")()[0]["images"] == dataset["images"]
