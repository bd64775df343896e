"""The COCO-scale benchmark on a tiny file: the generated json is what the loader reads, the figures are measured."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.coco_scale import KINDS, run_benchmark, write_coco_scale
from detect.data.coco import CocoDetection


def test_the_generated_file_loads_with_its_crowd_and_empty_images(tmp_path: Path) -> None:
    path = write_coco_scale(tmp_path, images=300, boxes=2000, name="train.json")
    dataset = json.loads(path.read_text())
    assert len(dataset["images"]) == 300 and len(dataset["annotations"]) == 2000 and len(dataset["categories"]) == 80
    loaded = CocoDetection(path, tmp_path / "images", keep_empty=False, on_bad_image="error", keep_coco=False)
    crowd = sum(ann["iscrowd"] for ann in dataset["annotations"])
    assert loaded.num_crowd == crowd > 0 and len(loaded.records.boxes) == 2000 - crowd
    assert loaded.num_empty_dropped >= 3 and len(loaded) == 300 - loaded.num_empty_dropped
    image, target = loaded[0]
    assert image.shape == (3, 48, 64) and target["boxes"].max() <= 64


def test_a_tiny_run_measures_every_rank_and_a_whole_epoch_of_both_layouts(tmp_path: Path) -> None:
    figures = run_benchmark(tmp_path, images=400, boxes=3000, val_images=50, val_boxes=300, workers=2,
                            batch_size=16, points=4)
    assert set(figures) == set(KINDS)
    for row in figures.values():
        assert row["setup_s"] > 0 and row["peak_rss_mib"] >= row["start_rss_mib"] > 100
    for kind in ("lists", "records"):
        epoch = figures[kind]["epoch"]
        assert [seen for seen, _ in epoch] == [16, 112, 208, 304, 400]  # every 6th of 25 batches, the last too
        assert all(len(workers) == 2 and min(workers) > 1 for _, workers in epoch)
    assert "epoch" not in figures["val"] and "epoch" not in figures["load_coco"]
