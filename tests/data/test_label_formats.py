"""YOLO and Pascal VOC datasets: the same records as COCO from the same boxes, bad labels counted or named in one
line, `python -m detect convert`, and a tiny training run through data=yolo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import TINY, compose_config, compose_train

from detect.config import instantiate_node
from detect.data.coco import CocoDetection
from detect.data.convert import convert
from detect.data.datamodule import DetectionDataModule
from detect.utils.errors import DetectError

NAMES = ["cat", "dog", "bird"]
# split -> images: (file name, (width, height), [(class index, [x, y, w, h] in pixels)])
SPLITS = {
    "train": [("a.png", (64, 48), [(0, [4, 6, 20, 12]), (2, [30, 10, 33, 37])]),
              ("b.png", (50, 70), [(1, [0, 0, 50, 70])]),
              ("c.png", (40, 30), [])],
    "val": [("d.png", (60, 40), [(2, [10, 5, 7, 9]), (0, [1, 1, 58, 38]), (1, [20, 20, 5, 5])]),
            ("e.png", (32, 32), [(1, [3, 4, 10, 11])])],
}


def write_images(folder: Path, images: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (width, height), _ in images:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8))


def write_yolo(root: Path, splits: dict = SPLITS) -> Path:
    """Ultralytics layout: data.yaml, images/<split>/, labels/<split>/ (6 decimals, as Ultralytics writes)."""
    for split, images in splits.items():
        write_images(root / "images" / split, images)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for name, (width, height), boxes in images:
            lines = [f"{c} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"
                     for c, (x, y, w, h) in boxes]
            (root / "labels" / split / name).with_suffix(".txt").write_text("".join(f"{line}\n" for line in lines))
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\n"
                                    "names:\n" + "".join(f"  {i}: {name}\n" for i, name in enumerate(NAMES)))
    return root


def voc_object(name: str, box: list, difficult: int = 0) -> str:
    x, y, w, h = box  # VOC: 1-based corners, the max corner inclusive
    return (f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x + 1}</xmin>"
            f"<ymin>{y + 1}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>")


def voc_xml(name: str, size: tuple[int, int], objects: list[str]) -> str:
    return (f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>")


def write_voc(root: Path, splits: dict = SPLITS) -> Path:
    """VOCdevkit layout: Annotations/<id>.xml, JPEGImages/, ImageSets/Main/<split>.txt."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split, images in splits.items():
        write_images(root / "JPEGImages", images)
        for name, size, boxes in images:
            objects = [voc_object(NAMES[c], box) for c, box in boxes]
            (root / "Annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, size, objects))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{Path(n).stem}\n" for n, _, _ in images))
    return root


def write_coco_splits(root: Path, splits: dict = SPLITS) -> list[str]:
    """COCO json per split (category ids 1..3) beside images/<split>/; the data=custom overrides."""
    overrides = ["data=custom"]
    for split, images in splits.items():
        write_images(root / "images" / split, images)
        entries = [{"id": i + 1, "file_name": name, "width": w, "height": h}
                   for i, (name, (w, h), _) in enumerate(images)]
        annotations = [{"id": len(entries) * 100 + k, "image_id": i + 1, "category_id": c + 1, "bbox": box,
                        "area": box[2] * box[3], "iscrowd": 0}
                       for i, (_, _, boxes) in enumerate(images) for k, (c, box) in enumerate(boxes)]
        categories = [{"id": i + 1, "name": name} for i, name in enumerate(NAMES)]
        (root / f"{split}.json").write_text(json.dumps({"images": entries, "annotations": annotations,
                                                        "categories": categories}))
        overrides += [f"data.{split}_json={root / f'{split}.json'}", f"data.{split}_images={root / 'images' / split}"]
    return overrides


def datamodule(overrides: list[str], tmp_path: Path) -> DetectionDataModule:
    module = instantiate_node(compose_train(overrides, tmp_path / "run").data)
    module.setup("fit")
    return module


def records(dataset: CocoDetection) -> dict:
    """What training sees of a split: file base names, image sizes, boxes, labels, class names."""
    return {"files": [Path(dataset.records.file_name(i)).name for i in range(len(dataset))],
            "sizes": dataset.records.sizes.tolist(), "boxes": dataset.records.boxes,
            "labels": dataset.records.labels.tolist(), "offsets": dataset.records.box_offsets.tolist(),
            "classes": dataset.classes.names}


def assert_same_records(got: dict, expected: dict) -> None:
    np.testing.assert_allclose(got.pop("boxes"), expected["boxes"], atol=1e-3)  # YOLO's 6 decimals
    assert got == {key: value for key, value in expected.items() if key != "boxes"}


def test_yolo_voc_and_coco_of_the_same_boxes_give_the_same_records(tmp_path: Path) -> None:
    coco = datamodule([*write_coco_splits(tmp_path / "coco"), "data.keep_empty_train=true"], tmp_path)
    yolo = datamodule(["data=yolo", f"data.root={write_yolo(tmp_path / 'yolo')}", "data.keep_empty_train=true"],
                      tmp_path)
    voc = datamodule(["data=voc", f"data.root={write_voc(tmp_path / 'voc')}", "data.keep_empty_train=true",
                      f"data.classes=[{','.join(NAMES)}]"], tmp_path)  # VOC has no class list: its order given
    for split in ("train", "val"):
        expected = records(getattr(coco, f"{split}_set"))
        assert expected["classes"] == NAMES and len(expected["labels"]) == sum(len(b) for _, _, b in SPLITS[split])
        for other in (yolo, voc):
            assert_same_records(records(getattr(other, f"{split}_set")), expected)
        assert voc.train_set.report.lines() == [] and yolo.val_set.report.lines() == []
    assert dict(yolo.train_set.report.counts) == {"empty_label_file": 1}  # c.png's, counted, kept without boxes
    assert voc.val_set.coco.loadImgs(1)[0]["file_name"] == "d.png"  # the evaluator's ground truth: same files
    assert yolo.val_set.coco.loadImgs(1)[0]["file_name"] == "images/val/d.png"


def test_bad_yolo_labels_skip_their_images_and_are_counted(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, {"train": SPLITS["train"], "val": SPLITS["val"]})
    labels = root / "labels" / "train"
    bad = {"out_of_range.png": "7 0.5 0.5 0.2 0.2", "pixels.png": "0 32 24 10 10", "words.png": "0 0.5 half 0.2 0.2",
           "short.png": "1 0.5 0.5", "nan.png": "1 nan 0.5 0.2 0.2"}
    write_images(root / "images" / "train", [(name, (40, 30), []) for name in [*bad, "unlabelled.png", "empty.png"]])
    for name, line in bad.items():
        (labels / name).with_suffix(".txt").write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    (labels / "empty.txt").write_text("\n")
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "images" / "train" / "broken.png").write_bytes(b"not an image")
    (labels / "broken.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    module = datamodule(["data=yolo", f"data.root={root}", "data.keep_empty_train=true"], tmp_path)
    report = module.train_set.report
    assert dict(report.counts) == {"class_out_of_range": 1, "outside_image": 1, "bad_label_line": 3,
                                   "no_label_file": 1, "empty_label_file": 2, "label_without_image": 1,
                                   "bad_image": 1}
    assert sorted(records(module.train_set)["files"]) == ["a.png", "b.png", "c.png", "empty.png", "unlabelled.png"]
    lines = "\n".join(report.lines())
    assert "pixels.txt:2: 0 32 24 10 10" in lines and "orphan.txt" in lines and "broken.png: not an image" in lines
    assert all(line.startswith("data.yaml:train: ") for line in report.lines())


def test_yolo_splits_as_txt_lists_and_roboflow_paths_read_the_same_images(tmp_path: Path) -> None:
    root = write_yolo(tmp_path / "yolo")
    plain = datamodule(["data=yolo", f"data.root={root}"], tmp_path)
    (root / "train.txt").write_text("".join(f"./images/train/{name}\n" for name, _, _ in SPLITS["train"]))
    (root / "data.yaml").write_text((root / "data.yaml").read_text().replace("path: .\n", "")
                                    .replace("train: images/train", "train: train.txt")
                                    .replace("val: images/val", "val: ../images/val"))  # as Roboflow writes it
    listed = datamodule(["data=yolo", f"data.root={root}"], tmp_path)
    for split in ("train", "val"):
        assert_same_records(records(getattr(listed, f"{split}_set")), records(getattr(plain, f"{split}_set")))


@pytest.mark.parametrize("problem, message", [
    ("no_yaml", "data.yaml does not exist"), ("no_names", "'names' must list the class names"),
    ("nc", "says nc: 5 but 'names' has 3 names"), ("no_val", "has no 'val' entry"),
    ("missing_folder", "val: images/nope is not a folder"),
])
def test_unusable_yolo_dataset_is_one_line(tmp_path: Path, problem: str, message: str) -> None:
    root = write_yolo(tmp_path)
    text = (root / "data.yaml").read_text()
    edits = {"no_yaml": "", "no_names": text.split("names:")[0], "nc": text + "nc: 5\n",
             "no_val": text.replace("val: images/val\n", ""),
             "missing_folder": text.replace("val: images/val", "val: images/nope")}
    (root / "data.yaml").write_text(edits[problem]) if problem != "no_yaml" else (root / "data.yaml").unlink()
    with pytest.raises(DetectError, match=message):
        datamodule(["data=yolo", f"data.root={root}"], tmp_path)


def test_voc_difficult_boxes_are_crowd_and_bad_files_are_counted(tmp_path: Path) -> None:
    root = write_voc(tmp_path)
    annotations = root / "Annotations"
    (annotations / "a.xml").write_text(voc_xml("a.png", (64, 48), [voc_object("cat", [4, 6, 20, 12], difficult=1),
                                                                   voc_object("bird", [30, 10, 33, 37])]))
    (annotations / "b.xml").write_text("<annotation><filename>b.png</filename>")  # cut off
    (annotations / "c.xml").write_text(voc_xml("c.png", (40, 30), ["<object><name>dog</name></object>"]))
    (annotations / "gone.xml").write_text(voc_xml("gone.png", (40, 30), [voc_object("dog", [1, 1, 5, 5])]))
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\nc\ngone\nno_xml\n")

    module = datamodule(["data=voc", f"data.root={root}", "data.keep_empty_train=true"], tmp_path)
    train = module.train_set
    assert dict(train.report.counts) == {"bad_xml": 2, "no_annotation_file": 1, "bad_image": 1, "unused_category": 1}
    assert module.classes.names == ["bird", "cat", "dog"]  # without data.classes: every name of both splits, sorted
    assert records(train)["files"] == ["a.png"] and records(train)["labels"] == [1]  # bird; the difficult cat out
    assert train.num_crowd == 1
    assert "b.xml: not XML" in "\n".join(train.report.lines())  # the first of the two; c.xml has no bndbox
    crowd = [ann for ann in module.val_set.coco.dataset["annotations"] if ann["iscrowd"]]
    assert crowd == []  # val had no difficult box; the train split's crowd box is in its own index:
    assert [ann["iscrowd"] for ann in train.coco.dataset["annotations"]] == [1, 0]


def test_voc_classes_fix_the_order_and_other_names_are_counted(tmp_path: Path) -> None:
    root = write_voc(tmp_path)
    module = datamodule(["data=voc", f"data.root={root}", "data.classes=[dog,cat]"], tmp_path)
    assert module.classes.names == ["dog", "cat"]
    assert module.val_set.report.counts["unknown_class"] == 1  # the val split's bird
    assert records(module.val_set)["labels"] == [2, 1, 1]  # cat, dog; dog
    with pytest.raises(DetectError, match="set data.root to a Pascal VOC folder"):
        datamodule(["data=voc", f"data.root={tmp_path / 'nope'}"], tmp_path)


def test_convert_writes_coco_json_that_trains_to_the_same_records(tmp_path: Path, capsys) -> None:
    yolo_root = write_yolo(tmp_path / "yolo")
    cfg = compose_config("convert", ["data=yolo", f"data.root={yolo_root}"], tmp_path / "converted")
    paths = convert(cfg)
    printed = capsys.readouterr().out
    assert "train: 3 images, 3 boxes" in printed and "val: 2 images, 4 boxes" in printed
    arguments = printed.split("train on it with: uv run train.py ")[1].split()
    converted = datamodule([*arguments, "data.keep_empty_train=true"], tmp_path)
    yolo = datamodule(["data=yolo", f"data.root={yolo_root}", "data.keep_empty_train=true"], tmp_path)
    for split in ("train", "val"):
        assert json.loads(paths[split].read_text())["categories"] == [{"id": i + 1, "name": n}
                                                                      for i, n in enumerate(NAMES)]
        assert_same_records(records(getattr(converted, f"{split}_set")), records(getattr(yolo, f"{split}_set")))


@pytest.mark.slow
def test_train_on_a_yolo_dataset(tmp_path: Path, capsys) -> None:
    from detect.engine.training import run

    root = write_yolo(tmp_path / "yolo")
    stats = run(compose_train([*TINY, "data=yolo", f"data.root={root}", "data.num_workers=0", "trainer.max_steps=1",
                               "trainer.val_check_interval=1", "model.weights=null"], tmp_path / "run"))  # offline
    printed = capsys.readouterr().out
    assert "val 2 images, 4 boxes from" in printed and "train 2 images, 3 boxes from" in printed
    assert set(stats) >= {"AP", "AP50"} and (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
