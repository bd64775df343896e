"""Write the train and val splits of any data config as COCO-format json, read and checked as train.py reads them
(YOLO and Pascal VOC included); the file names stay relative to each split's image folder.

    uv run python -m detect convert data=yolo data.root=/data/my_yolo_set
    uv run python -m detect convert data=voc data.root=/data/VOCdevkit/VOC2012 hydra.run.dir=/data/voc_coco
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from detect.config import hydra_main, instantiate_node
from detect.data.datamodule import DetectionDataModule
from detect.utils.errors import exit_on_error

SPLITS = ("train", "val")


def convert(cfg: DictConfig) -> dict[str, Path]:
    """Write <output_dir>/train.json and val.json; print what the checks reported and the train.py arguments."""
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule: DetectionDataModule = instantiate_node(cfg.data)
    paths, arguments = {}, ["data=custom"]
    for split in SPLITS:
        dataset, report = datamodule.reader(split)()
        paths[split] = output_dir / f"{split}.json"
        paths[split].write_text(json.dumps({key: dataset[key] for key in ("images", "annotations", "categories")}))
        print(f"{split}: {len(dataset['images'])} images, {len(dataset['annotations'])} boxes from "
              f"{datamodule.source(split)} -> {paths[split]}")
        for line in report.lines():
            print(f"  data check: {line}")
        arguments += [f"data.{split}_json={paths[split]}", f"data.{split}_images={datamodule.image_dir(split)}"]
    print("train on it with: uv run train.py " + " ".join(arguments))
    return paths


@hydra_main("convert")
def main(cfg: DictConfig) -> None:
    exit_on_error(convert, cfg)


if __name__ == "__main__":
    main()
