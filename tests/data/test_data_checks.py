"""Data checks at set-up: each quirk of real COCO files as a tiny file, with its message or its counted fix/skip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import compose_config, write_coco

from detect.data.browse import browse
from detect.data.coco import CocoDetection, read_coco
from detect.data.datamodule import CocoDataModule
from detect.evaluation.coco import evaluate_coco
from detect.structures import Classes
from detect.utils.errors import DetectError

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 5, "name": "bird"}]


def image(image_id: int, name: str, width: int = 64, height: int = 48) -> dict:
    return {"id": image_id, "file_name": name, "width": width, "height": height}


def box(ann_id: int, image_id: int, category_id: int = 1, **extra: object) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [4, 4, 20, 20], "area": 400,
            "iscrowd": 0} | extra


@pytest.fixture
def quirky(tmp_path: Path) -> Path:
    """Two good images, then one of each kind of problem."""
    images = [image(1, "a.png"), image(2, "b.jpg"), image(3, "text.jpg"), image(4, "cut.jpg"), image(5, "cut.png"),
              image(6, "small.png", width=60)]
    path = write_coco(tmp_path, images, [box(1, 1), box(2, 2, 2)], CATEGORIES)
    folder = tmp_path / "images"
    (folder / "text.jpg").write_text("this is not a JPEG")
    cv2.imwrite(str(folder / "cut.jpg"), np.full((48, 64, 3), 128, np.uint8))
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:-40])  # truncated by a broken copy
    (folder / "cut.png").write_bytes((folder / "a.png").read_bytes()[:-30])
    cv2.imwrite(str(folder / "small.png"), np.zeros((48, 64, 3), np.uint8))  # the json says 60 wide
    dataset = json.loads(path.read_text())
    dataset["annotations"] += [
        box(3, 1, category_id=9),                                # category not in 'categories'
        box(4, 99),                                              # image id that does not exist
        {"id": 5, "image_id": 2, "category_id": 1, "bbox": [4, 4, 10, 10]},  # no area, no iscrowd
        box(6, 2, bbox=[1, 2, 3]),                                # not 4 numbers
        box(7, 3), box(8, 6),                                     # on images that will be skipped
    ]
    path.write_text(json.dumps(dataset))
    return path


def test_quirks_are_fixed_or_skipped_and_counted(quirky: Path) -> None:
    dataset = CocoDetection(quirky, quirky.parent / "images", on_bad_image="skip")
    counts = dataset.report.counts
    assert dataset.image_ids == [1, 2]
    assert (counts["unknown_category"], counts["unknown_image"], counts["bad_bbox"], counts["bad_image"]) == (1, 1, 1, 4)
    assert (counts["filled_area"], counts["filled_iscrowd"], counts["unused_category"]) == (1, 1, 1)
    filled = dataset.coco.anns[5]
    assert filled["area"] == 100.0 and filled["iscrowd"] == 0
    lines = "\n".join(dataset.report.lines())
    assert "1 annotations name a category id that is not in 'categories': skipped (first: annotation id 3, " \
           "category_id 9)" in lines
    assert "1 categories have no annotation" in lines and "bird (id 5)" in lines
    assert ("4 images are missing, not images, truncated or of another size than the json says: skipped "
            "(first: text.jpg: not an image)") in lines
    # pycocotools scores the checked file: the filled area and iscrowd let COCOeval run
    results = [{"image_id": 2, "category_id": 1, "bbox": [4, 4, 10, 10], "score": 0.9},
               {"image_id": 2, "category_id": 2, "bbox": [4, 4, 20, 20], "score": 0.8}]
    evaluation = evaluate_coco(dataset.coco, results, Classes(["cat", "dog", "bird"], [1, 2, 5]))
    assert evaluation.stats["AP50"] > 0


@pytest.mark.parametrize(("name", "problem"), [("text.jpg", "not an image"), ("cut.jpg", "a truncated JPEG"),
                                               ("cut.png", "a truncated PNG"),
                                               ("small.png", "64x48 pixels but the json says 60x48")])
def test_each_bad_image_is_one_line_under_on_bad_image_error(quirky: Path, name: str, problem: str) -> None:
    dataset = json.loads(quirky.read_text())
    dataset["images"] = [entry for entry in dataset["images"] if entry["file_name"] in ("a.png", name)]
    quirky.write_text(json.dumps(dataset))
    with pytest.raises(DetectError, match=rf"^image {name} \(id \d\) of .*ann.json is {problem}; fix or remove it"):
        read_coco(quirky, quirky.parent / "images", on_bad_image="error")


def test_folder_parts_duplicate_ids_and_missing_sizes(tmp_path: Path) -> None:
    path = write_coco(tmp_path, [image(1, "a.png")], [box(1, 1)], CATEGORIES)
    dataset = json.loads(path.read_text())
    dataset["images"][0]["file_name"] = "exports/project-7/a.png"  # a labelling tool's own folder
    del dataset["images"][0]["width"], dataset["images"][0]["height"]
    path.write_text(json.dumps(dataset))
    coco, report = read_coco(path, tmp_path / "images")
    assert coco.imgs[1]["file_name"] == "a.png" and (coco.imgs[1]["width"], coco.imgs[1]["height"]) == (64, 48)
    assert report.counts["folder_in_file_name"] == 1 and report.counts["filled_size"] == 1

    dataset["images"].append(image(1, "a.png"))
    path.write_text(json.dumps(dataset))
    with pytest.raises(DetectError, match=r"'images' has duplicate ids \[1\]; every image and category needs"):
        read_coco(path, tmp_path / "images")
    with pytest.raises(DetectError, match="data.on_bad_image='ignore' is not allowed; choose one of skip, error"):
        read_coco(path, tmp_path / "images", on_bad_image="ignore")


def test_a_bad_val_split_fails_at_setup_before_any_training(tmp_path: Path) -> None:
    train = write_coco(tmp_path / "train", [image(1, "a.png")], [box(1, 1)], CATEGORIES)
    val = write_coco(tmp_path / "val", [image(1, "v.png")], [box(1, 1)], CATEGORIES)
    (tmp_path / "val" / "images" / "v.png").write_text("truncated")
    module = CocoDataModule(str(train), str(train.parent / "images"), str(val), str(val.parent / "images"),
                            on_bad_image="error")
    with pytest.raises(DetectError, match="image v.png .* is not an image"):
        module.setup("fit")
    skip = CocoDataModule(str(train), str(train.parent / "images"), str(val), str(val.parent / "images"))
    with pytest.raises(DetectError, match=r"none of the 1 images of .*ann.json is usable \(v.png: not an image\)"):
        skip.setup("fit")


def test_browse_draws_samples_and_reports_the_label_statistics(gappy_coco: Path, tmp_path: Path) -> None:
    images = str(gappy_coco.parent / "images")
    cfg = compose_config("browse", ["data=custom", f"data.train_json={gappy_coco}", f"data.train_images={images}",
                                    f"data.val_json={gappy_coco}", f"data.val_images={images}", "num_images=2"],
                         tmp_path / "browse")
    browse(cfg)
    assert {path.name for path in (tmp_path / "browse").iterdir()} == {"samples.png", "labels.png", "report.txt"}
    text = (tmp_path / "browse" / "report.txt").read_text()
    assert text.startswith("3 classes: car, cat, toothbrush")
    # gappy_coco: 3 images, 5 annotations: 1 crowd, 1 degenerate (left out), 3 boxes kept; image 12 has none and
    # the train split drops empty images (keep_empty_train=false)
    assert "train: 2 images, 3 boxes, 0 images without boxes, 1 crowd boxes, 1 degenerate boxes dropped, " \
           "1 empty images dropped" in text
    assert "val: 3 images, 3 boxes, 1 images without boxes" in text
